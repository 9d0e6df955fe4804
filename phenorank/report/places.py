"""Time-lapse pages: images that are places of a field of view followed over time (the tiles of a
wound-healing movie, fields of a live-cell run), not wells of a plate. The readout of each place
over time, and where in the frame it is high."""

from __future__ import annotations

import numpy as np

from . import plots
from .page import figure

PLACE_COLUMNS = ("sample", "field", "place", "position")
TIME_COLUMNS = ("time", "frame", "timepoint", "day")


def _numeric(samples, name: str) -> np.ndarray | None:
    if name not in samples:
        return None
    try:
        values = np.asarray(samples[name], np.float64)
    except (TypeError, ValueError):
        return None
    return values if np.isfinite(values).all() else None


def time_and_place(samples) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(time column, its values, place of each item) when the items follow places over time:
    a numeric time with 2+ steps and a place column seen at 2+ times; otherwise None."""
    for time_name in TIME_COLUMNS:
        times = _numeric(samples, time_name)
        if times is None or len(np.unique(times)) < 2:
            continue
        for place_name in PLACE_COLUMNS:
            if place_name in samples:
                places = np.asarray(samples[place_name]).astype(str)
                if len(np.unique(places)) < len(places):
                    return time_name, times, places
        if time_name != "day" and {"tile_y", "tile_x"} <= set(samples.columns):
            places = np.array([f"y{y:g} x{x:g}" for y, x in zip(samples["tile_y"], samples["tile_x"])])
            return time_name, times, places
    return None


def time_lapse_sections(samples, scores: np.ndarray, title: str, value: str = "score") -> list[str]:
    """Empty for plate data (wells): there the plate maps say it."""
    if "well" in samples and any(w is not None and str(w) not in ("", "nan", "None") for w in samples["well"]):
        return []
    found = time_and_place(samples)
    finite = np.isfinite(scores)
    if found is None or finite.sum() < 4:
        return []
    time_name, times, places = found
    figures = [figure(plots.time_course_plot(times[finite], scores[finite], places[finite], title, value,
                                             xlabel=time_name), "time course")]
    ys, xs = _numeric(samples, "tile_y"), _numeric(samples, "tile_x")
    if ys is not None and xs is not None:
        figures.append(figure(plots.spatial_map(ys[finite], xs[finite], scores[finite], times[finite], title, value),
                              "spatial map"))
    return [f"<h2>Over time: each place's {value}</h2><p class=note>{len(np.unique(places))} places followed over "
            f"{len(np.unique(times))} time points ({time_name}); one line per place, black: the median over places "
            "with its interquartile band. The map puts each place where it lies in the frame, one panel per time "
            "point, on one colour scale.</p><div class=figs>" + "".join(figures) + "</div>"]
