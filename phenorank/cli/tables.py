"""Terminal tables that fit the width they are given: each column gets at least half of its longest
word (so no name spans more than two lines), long words break after / - _ , . where they can, and a
table too wide even so continues in a second block that repeats the first column (wrapping by
column, as pandas prints a wide frame)."""

from __future__ import annotations

import math
import re

BORDER = 3  # a column's padding and rule in rich's default box
_BREAK_AFTER = re.compile(r"[/\-_,.:|=]")


def _words(text: str) -> list[str]:
    return text.split() or [""]


def min_width(texts: list[str]) -> int:
    """The narrowest a column may be: half its longest word, at least 4 characters."""
    longest = max((len(w) for t in texts for w in _words(t)), default=1)
    return max(min(4, longest), math.ceil(longest / 2))


def wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width``: words kept whole where they fit, a longer word
    broken after a separator (/ - _ , . : | =) where that costs no extra line, else at the width."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in _words(paragraph):
            while len(word) > width:
                room = width - len(line) - (1 if line else 0)
                if room < max(4, width // 3) and line:  # too little left on this line: start a new one
                    lines.append(line)
                    line = ""
                    continue
                needed = math.ceil((len(word) - room) / width)  # further lines if cut hard at the room
                cuts = [m.end() for m in _BREAK_AFTER.finditer(word[:room])
                        if math.ceil((len(word) - m.end()) / width) <= needed]
                cut = max(cuts, default=room)
                lines.append((line + " " if line else "") + word[:cut])
                line, word = "", word[cut:]
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return "\n".join(lines)


def layout(columns: list[str], cells: list[list[str]], width: int, comfortable: int = 24
           ) -> list[tuple[list[int], list[int]]]:
    """Blocks of (column indexes, their widths), each block within ``width`` characters. A column
    is given its natural width up to ``comfortable`` characters before columns move to the next
    block; the room left then goes to the columns that want more."""
    texts = [[columns[i], *(row[i] for row in cells)] for i in range(len(columns))]
    natural = [max(len(line) for t in col for line in t.split("\n")) for col in texts]
    least = [min(n, min_width(col)) for n, col in zip(natural, texts)]
    easy = [min(n, max(lo, comfortable)) for n, lo in zip(natural, least)]

    def cost(block: list[int]) -> int:
        return sum(easy[j] + BORDER for j in block) + 1

    blocks: list[list[int]] = []
    current: list[int] = []
    for i in range(len(columns)):
        # a block after the first repeats column 0 (what the rows are) and holds one more at least
        if current and cost(current + [i]) > width and len(current) > (1 if blocks else 0):
            blocks.append(current)
            current = [0]
        current.append(i)
    blocks.append(current)
    out = []
    for block in blocks:
        room = width - 1 - BORDER * len(block)
        widths = [easy[j] for j in block]
        while sum(widths) > room and any(w > least[j] for w, j in zip(widths, block)):
            k = max(range(len(block)), key=lambda k: widths[k] - least[block[k]])
            widths[k] -= 1
        while sum(widths) < room and any(w < natural[j] for w, j in zip(widths, block)):
            k = max(range(len(block)), key=lambda k: natural[block[k]] - widths[k])
            widths[k] += 1
        out.append((block, widths))
    return out


def compact(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """A comparison made to read on a terminal: columns empty in every row left out, and a
    parameters column (JSON) cut to the keys whose values differ between rows (``group=sample``)."""
    import json

    keep = [i for i, c in enumerate(columns) if any(r[i] not in (None, "") for r in rows)]
    columns, rows = [columns[i] for i in keep], [tuple(r[i] for i in keep) for r in rows]
    for i, name in enumerate(columns):
        if not name.endswith("_params"):
            continue
        try:
            parsed = [json.loads(r[i]) if r[i] else {} for r in rows]
        except (TypeError, ValueError):
            continue
        if not all(isinstance(p, dict) for p in parsed):
            continue
        differing = sorted(k for k in {k for p in parsed for k in p} if len({json.dumps(p.get(k)) for p in parsed}) > 1)
        shown = [" ".join(f"{k}={p[k] if p.get(k) not in ('', None) else '-'}" for k in differing) for p in parsed]
        rows = [(*r[:i], s, *r[i + 1:]) for r, s in zip(rows, shown)]
    return columns, rows
