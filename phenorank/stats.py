"""Statistics helpers for plugin authors and notebooks: the same intervals the built-in evaluators
report, so a new evaluator's numbers are comparable with theirs.

    from phenorank.stats import bootstrap_interval, well_keys

    low, high = bootstrap_interval(lambda ix: my_measure(scores[ix], labels[ix]),
                                   well_keys(samples), n_resamples=1000, seed=0, strata=labels)

- ``bootstrap_interval(statistic, groups, n_resamples, seed, strata, level, batch)``: percentile
  interval over resamples of whole groups (wells, not images: images of one well are not
  independent), within strata (each class keeps its number of wells); ``batch`` computes the
  statistic over all resamples at once when they have one size.
- ``well_keys(samples)``: the unit a bootstrap resamples (plate and well; else sample; else image).
- ``group_means(scores, samples)``: each treatment group's mean score with its 95% interval.
- ``mean_interval(values)``: the 95% bootstrap interval of a mean (scipy.stats.bootstrap).
"""

from .analysis.hits import mean_interval
from .core.statistics import GroupResampler, bootstrap_interval, group_means, well_keys

__all__ = ["GroupResampler", "bootstrap_interval", "group_means", "mean_interval", "well_keys"]
