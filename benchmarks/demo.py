"""`make demo` end to end, timed by step, with the classifier hot spot against its seed loop.

1. `phenorank demo` in a fresh folder, as a subprocess whose stderr is a pipe: the plain progress
   lines (one per grid cell or chunk, with the elapsed time) give each step's duration; "other" is
   start-up, the tables, the report. Target: <= 60 s on 2 idle cores.
2. On that store, the softmax ranker (3 references x 2 encoders) and the linear probe (2
   encoders), once with the default solver (scikit-learn's L-BFGS) and once with the seed's
   torch loop (Adam, >= 3000 steps): the ratio is the speed-up of the default.

    .venv/bin/python benchmarks/demo.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHENORANK = str(Path(sys.executable).with_name("phenorank"))
LINE = re.compile(r"^\[\s*([0-9.]+) s\] (.+?): (\d+)/(\d+)")


def timed(args: list[str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([PHENORANK, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=True)
    return time.perf_counter() - started, done.stderr


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        total, log = timed(["demo"], folder)
        steps: dict[str, float] = {}
        for line in log.splitlines():
            match = LINE.match(line)
            if match and match.group(3) == match.group(4):  # a step's last line: its duration
                steps[match.group(2)] = float(match.group(1))
        # the grid's two bars start together and advance in one pass over the embedding sets
        # (each set's cells and its embedding evaluations): one step, as long as the longer bar
        if "evaluate embeddings" in steps and "rank and evaluate" in steps:
            steps["rank and evaluate (rankings and embeddings)"] = max(steps.pop("rank and evaluate"),
                                                                       steps.pop("evaluate embeddings"))
        print(f"make demo (phenorank demo, fresh): {total:6.1f} s   target <= 60 s on 2 idle cores "
              f"({os.cpu_count()} cores here)")
        for name, seconds in steps.items():
            print(f"  {name:<44} {seconds:6.1f} s")
        print(f"  {'other (start-up, tables, report)':<44} {total - sum(steps.values()):6.1f} s")

        grid = ["run", "--encoders", "raw,morphometrics", "--rankers", "softmax", "--references",
                "control,single_dose,exploded", "--evaluators", "linear-probe", "--force"]
        fast, _ = timed(grid, folder)
        seed, _ = timed([*grid, "-p", "softmax.solver=adam", "-p", "linear-probe.solver=adam"], folder)
        print(f"softmax x 6 + linear probe x 2, scikit-learn L-BFGS: {fast:6.1f} s; seed's Adam loop: {seed:6.1f} s "
              f"(ratio default/seed {fast / seed:.2f}; both include ~2 s of start-up)")


if __name__ == "__main__":
    main()
