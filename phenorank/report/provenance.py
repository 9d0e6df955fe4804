"""What made a figure: the command that recomputes it and every parameter of its stored key,
shown under the figure as a folded "how this was made" line."""

from __future__ import annotations

import html
import json
import shlex

from ..core.store import Store

# Stored analysis parameters -> the options of the command that takes them
_QC_LIMITS = {"z_prime": "--min-z-prime", "ssmd": "--min-ssmd", "control_cv": "--max-control-cv", "edge_p": "--edge-p"}
_COMMANDS = {"dose_response": "potency", "hits": "hits", "plate_qc": "qc", "image_qc": "qc"}


def _option(name: str, value) -> list[str]:
    if value is None or value == [] or value is False:
        return []
    if value is True:
        return [f"--{name.replace('_', '-')}"]
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return [f"--{name.replace('_', '-')}", str(value)]


def analysis_command(table: str, kind: str, source: str, readout: str, params: dict) -> str:
    """The ``phenorank potency|hits|qc`` line that recomputes a stored analysis."""
    words = ["phenorank", _COMMANDS[table], "--readout", source if kind == "ranking" else readout]
    for name, value in sorted(params.items()):
        if name == "limits":
            for limit, option in _QC_LIMITS.items():
                if limit in value:
                    words += [option, "none" if value[limit] is None else str(value[limit])]
        elif name == "focus":
            words.append("--focus" if value else "--no-focus")
        else:
            words += _option(name, value)
    return shlex.join(words)


def ranking_command(store: Store, ranking_id: str) -> tuple[str, dict]:
    """The ``phenorank rank`` line that recomputes a stored ranking, and its whole key."""
    found = store.con.execute(
        "SELECT e.encoder, e.head, e.level, e.transforms, CAST(e.params AS VARCHAR), e.code, r.ranker, "
        "CAST(r.ranker_params AS VARCHAR), r.metric, CAST(r.metric_params AS VARCHAR), r.reference, r.day, "
        "r.ranker_code, r.metric_code, r.run_id, u.command, r.created_at FROM rankings r "
        "JOIN embedding_sets e USING (embedding_set_id) LEFT JOIN runs u ON u.run_id = r.run_id "
        "WHERE r.ranking_id = ?", [ranking_id]).fetchall()
    if not found:
        return "", {}
    (encoder, head, level, transforms, encoder_params, code, ranker, ranker_params, metric, metric_params, reference,
     day, ranker_code, metric_code, run_id, run_command, created) = found[0]
    words = ["phenorank", "rank", "--encoder", encoder, "--head", head, "--ranker", ranker, "--metric", metric,
             "--reference", reference, "--day", "all" if day is None else str(day)]
    for plugin, params in ((ranker, ranker_params), (metric, metric_params)):
        for name, value in sorted(json.loads(params or "{}").items()):
            words += ["-p", f"{plugin}.{name}={value}"]
    key = {"ranking_id": ranking_id, "encoder": encoder, "encoder_params": json.loads(encoder_params or "{}"),
           "head": head, "level": level, "transforms": transforms, "ranker": ranker,
           "ranker_params": json.loads(ranker_params or "{}"), "metric": metric,
           "metric_params": json.loads(metric_params or "{}"), "reference": reference, "day": day,
           "code": {"encoder": code, "ranker": ranker_code, "metric": metric_code},
           "made_by_run": f"{run_id} (phenorank {run_command}, {created:%Y-%m-%d %H:%M})" if run_id else None}
    return shlex.join(words), key


def made_by(command: str, key: dict) -> str:
    """The folded line under a figure: the command, and on opening the stored key."""
    if not command:
        return ""
    body = html.escape(json.dumps(key, indent=1, sort_keys=True, default=str))
    return (f"<details class=made><summary>how this was made: <code>{html.escape(command)}</code></summary>"
            f"<pre>{body}</pre></details>")


def ranking_made_by(store: Store, ranking_id: str) -> str:
    return made_by(*ranking_command(store, ranking_id))


def analysis_made_by(table: str, analysis: dict) -> str:
    """``analysis``: a stored analysis as ``report.analysis`` lists them (kind, source, name, params)."""
    command = analysis_command(table, analysis["kind"], analysis["source"], analysis["name"], analysis["params"])
    return made_by(command, {"readout": analysis["name"], "readout_kind": analysis["kind"],
                             "readout_source": analysis["source"], "params": analysis["params"],
                             "params_hash": analysis["params_hash"]})
