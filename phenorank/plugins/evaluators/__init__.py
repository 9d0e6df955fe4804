"""Built-in evaluators: of rankings (``scores``) and of embeddings (``embeddings``)."""

from phenorank import hookimpl

from .embeddings import KMeansAccuracy, LinearProbe, MeanAveragePrecision
from .scores import HoldoutRange, RankCorrelation, RankingAccuracy, ranking_accuracy


@hookimpl
def register_evaluators(register):
    for evaluator in (RankingAccuracy, RankCorrelation, HoldoutRange, LinearProbe, KMeansAccuracy,
                      MeanAveragePrecision):
        register(evaluator)
