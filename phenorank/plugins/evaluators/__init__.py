"""Built-in evaluators: of rankings (``scores``), of embeddings (``embeddings``), and of an
encoder's response to corrupted images (``encoder``)."""

from phenorank import hookimpl

from .choose_k import ChooseK
from .classification import ClassificationReport, SVMProbe
from .clustering import AgglomerativeClustering, GaussianMixtureClustering, KMeansClustering
from .drift import PlateDrift
from .embeddings import KMeansAccuracy, LinearProbe, MeanAveragePrecision
from .moa import NotSameCompoundAccuracy
from .robustness import Robustness
from .scores import HoldoutRange, RankCorrelation, RankingAccuracy, ranking_accuracy


@hookimpl
def register_evaluators(register):
    for evaluator in (RankingAccuracy, RankCorrelation, HoldoutRange, LinearProbe, KMeansAccuracy,
                      MeanAveragePrecision, KMeansClustering, AgglomerativeClustering, GaussianMixtureClustering,
                      Robustness, NotSameCompoundAccuracy, PlateDrift, ChooseK, SVMProbe, ClassificationReport):
        register(evaluator)
