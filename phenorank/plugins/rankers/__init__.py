"""Built-in rankers: one score per image, higher = further from the reference class.

The four ranking strategies of seed 000 chapter 9, one module each: ``image-predictor`` and
``predictor`` (9.1: the day-10 image, or its features, predicted from day 7), ``softmax`` (9.2),
``centroid`` (9.3), ``pca`` / ``umap`` (9.4).
"""

from phenorank import hookimpl

from .centroid import CentroidRanker
from .image_predictor import ImagePredictorRanker
from .predictor import PredictorRanker
from .projection import PCARanker, UMAPRanker
from .softmax import SoftmaxRanker


@hookimpl
def register_rankers(register):
    for ranker in (CentroidRanker, SoftmaxRanker, PredictorRanker, ImagePredictorRanker, PCARanker, UMAPRanker):
        register(ranker)
