"""The C allocator, told to keep large blocks, for work that allocates and frees many large arrays
of one size: ingest's image stacks, and a network's activations in embed and training.

glibc serves a block over its mapping threshold (which slides up to 32 MB) with a fresh ``mmap``
and unmaps it when it is freed, so every such array starts as pages the kernel must fault in and
zero. A 5-layer 2054 x 2456 uint16 stack is 50 MB: reading one took 6.6 ms against 2.3 ms for a
3-layer stack (30 MB, under the threshold, so its memory was reused). Served from the heap and
kept after it is freed, the 5-layer read took 3.7 ms, in proportion to its bytes. ResNet18's
first activations on a batch of 64 crops of 96 px are 38 MB: embedding 2048 crops ran at 470
against 371 images/s (``benchmarks/embed.py --allocator``).
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_state: dict[str, bool] = {}


def keep_large_blocks(largest: int = 256 << 20, kept: int = 1 << 30) -> bool:
    """Serve blocks up to ``largest`` bytes from the heap, and keep up to ``kept`` bytes of freed
    heap for reuse instead of handing it back. For the rest of the process: glibc cannot be given
    its sliding threshold back, and a peak's memory stays with the process (it was needed once).
    Once per process; False where the C library is not glibc (nothing changed)."""
    if "set" not in _state:
        _state["set"] = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _state["set"] = bool(libc.mallopt(_M_MMAP_THRESHOLD, largest)) and \
                    bool(libc.mallopt(_M_TRIM_THRESHOLD, kept))
            except (OSError, AttributeError):  # musl and others: no mallopt
                pass
    return _state["set"]
