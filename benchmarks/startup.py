"""`phenorank ingest` of one file, start to finish, as a user runs it, against a bare script.

    .venv/bin/python benchmarks/startup.py [--rounds 5]

Each round runs, in fresh processes and alternating: (a) ``phenorank ingest`` of a folder with
one 3-layer 1000 x 1200 stack into a new store; (b) the baseline, a plain Python script that
imports what the work needs (NumPy, tifffile, OpenCV, DuckDB), reads the file, crops and
resizes it and writes one row to a new DuckDB file. Prints the best wall time of each and the
difference, which is what phenorank's start-up (imports, plugin loading, code identities, the
store's schema) costs. Target (issue 23): the ingest at most 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = """
import sys, numpy as np, tifffile, cv2, duckdb
stack = tifffile.imread(sys.argv[1])
side = min(stack.shape[1:])
crop = np.stack([cv2.resize(layer[:side, :side], (96, 96), interpolation=cv2.INTER_AREA) for layer in stack])
con = duckdb.connect(sys.argv[2])
con.execute("CREATE TABLE crops (image_id VARCHAR, pixels BLOB)")
con.execute("INSERT INTO crops VALUES (?, ?)", ["one", crop.tobytes()])
con.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import numpy as np
    import tifffile

    from phenorank.core import synthetic_plate as sp

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "plate"
        folder.mkdir()
        look = sp.spheroid_look(rng, 1000, 0.0, 10, "control")
        image = sp.render_spheroid(rng, 1000, 1200, (500, 600), **look)
        path = folder / "P1_B02_day7.tif"
        tifffile.imwrite(path, sp.focal_stack(rng, image, 3))
        phenorank = str(Path(sys.executable).parent / "phenorank")
        times: dict[str, list[float]] = {"phenorank ingest": [], "bare script": []}
        for round_ in range(args.rounds):
            commands = {
                "phenorank ingest": [phenorank, "--db", f"{tmp}/p{round_}.duckdb", "ingest", str(folder),
                                     "--pattern", "{plate}_{well}_day{day}.tif", "--condition", "control"],
                "bare script": [sys.executable, "-c", BASELINE, str(path), f"{tmp}/b{round_}.duckdb"],
            }
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    ours, bare = min(times["phenorank ingest"]), min(times["bare script"])
    print(f"one 3-layer 1000 x 1200 file, best of {args.rounds} rounds (fresh processes, alternating)")
    print(f"phenorank ingest {ours:.2f} s, bare script {bare:.2f} s, phenorank's own start-up {ours - bare:.2f} s "
          f"(target: ingest <= 1 s)")


if __name__ == "__main__":
    main()
