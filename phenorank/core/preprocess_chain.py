"""A chain of preprocessor plugins applied to each file's channels at full resolution, before the
crop; its key (steps, parameters, code, and the digest of what fitted steps learned) enters the
crop set's key, so two preprocessings of the same files live side by side in one store.

Fitted steps (illumination correction) learn per group (plate) in a first pass over the files,
each file read once more and passed through the steps before it; the main pass then applies the
whole chain to each file as it is cropped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from ..registry.contracts import Preprocessor
from .preprocess import PreprocessError, unit_scale


def full_scale(stack: np.ndarray) -> float:
    """The stack's full scale (65535, 255 or 1), refusing what the crop refuses (other types,
    floats outside [0, 1], NaN) with its reason: ``unit_scale`` maps that scale onto 16 bits."""
    return 65535.0 / unit_scale(stack)


@dataclass
class Chain:
    steps: Sequence[Preprocessor]
    states: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)

    def run(self, stack: np.ndarray, group: str, upto: int | None = None) -> np.ndarray:
        """The stack through the steps (the first ``upto``), as float32 on the file's scale."""
        scale = full_scale(stack)
        x = np.asarray(stack, np.float32)
        for index, step in enumerate(self.steps[:upto]):
            state = self.states.get((index, group)) if step.fitted else None
            if step.fitted and state is None:
                raise PreprocessError(f"{step.name}: nothing was fitted for group {group!r}")
            x = np.clip(step.apply(x, scale, state), 0, scale)
        return x

    def apply(self, stack: np.ndarray, group: str) -> np.ndarray:
        """The stack through every step, back in its own pixel type."""
        x = self.run(stack, group)
        return x if stack.dtype.kind == "f" else np.rint(x).astype(stack.dtype)

    @property
    def key(self) -> str:
        """Steps, their parameters and code, and a digest of every fitted state."""
        states = hashlib.blake2b(digest_size=8)
        for (index, group), state in sorted(self.states.items()):
            states.update(f"{index}|{group}|{state.shape}".encode())
            states.update(np.ascontiguousarray(state, np.float32).tobytes())
        payload = json.dumps({"steps": [[s.name, s.params, getattr(s, "code", "")] for s in self.steps],
                              "states": states.hexdigest() if self.states else ""}, sort_keys=True, default=str)
        return hashlib.blake2b(payload.encode(), digest_size=6).hexdigest()

    @property
    def group_by(self) -> str:
        """The column whose groups the fitted steps learn on (every fitted step must agree)."""
        columns = {s.fit_by for s in self.steps if s.fitted}
        if len(columns) > 1:
            raise PreprocessError(f"fitted preprocessors learn per different columns ({', '.join(sorted(columns))})")
        return next(iter(columns), "plate")

    def describe(self) -> list[dict]:
        return [{"name": s.name, "params": s.params} for s in self.steps]


def group_of(entry, column: str) -> str:
    value = entry.metadata().get(column)
    return "" if value is None else str(value)


def fit_chain(steps: Sequence[Preprocessor], entries: list, read: Callable[[str], np.ndarray],
              advance: Callable[[int], None] = lambda n=1: None) -> Chain:
    """Fit every fitted step on its groups' files (a file that cannot be read is skipped here: the
    main pass rejects it with the reason)."""
    chain = Chain(list(steps))
    chain.group_by  # noqa: B018 - refuses steps that disagree on their groups, before any reading
    for index, step in enumerate(chain.steps):
        if not step.fitted:
            continue
        groups: dict[str, list] = {}
        for entry in entries:
            groups.setdefault(group_of(entry, step.fit_by), []).append(entry)
        for group, members in sorted(groups.items()):
            stacks = _readable(members, read, advance)
            first = next(stacks, None)
            if first is None:
                continue
            scale = full_scale(first)
            prepared = (chain.run(s, group, upto=index) for s in itertools.chain([first], stacks))
            chain.states[(index, group)] = np.asarray(step.fit(prepared, scale), np.float32)
    return chain


def _readable(members: list, read: Callable[[str], np.ndarray], advance) -> Iterator[np.ndarray]:
    for entry in members:
        try:
            stack = read(entry.location)
        except Exception:  # noqa: BLE001 - reported by the main pass, file by file
            stack = None
        advance(1)
        if stack is not None and stack.ndim == 3:
            yield stack
