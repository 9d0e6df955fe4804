"""Built-in encoders, one module per family (timm-style). Torch-based ones import torch only
when they embed or train."""

from phenorank import hookimpl

from .baselines import CellCount, RandomInit
from .cae import ReconstructionAutoencoder
from .classifier import SupervisedClassifier
from .dim import DeepInfoMax
from .efficientnet import ImageNetEfficientNetLite0
from .imagenet import ImageNetResNet18, ImageNetResNet50
from .morphometrics import MorphometricsEncoder
from .raw import RawPixelsEncoder
from .ssl import BYOL, SimCLR


@hookimpl
def register_encoders(register):
    for encoder in (RawPixelsEncoder, MorphometricsEncoder, ImageNetResNet18, ImageNetResNet50,
                    ImageNetEfficientNetLite0, SimCLR, BYOL, ReconstructionAutoencoder, SupervisedClassifier, DeepInfoMax, CellCount,
                    RandomInit):
        register(encoder)
