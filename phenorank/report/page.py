"""HTML pieces of the report: a PNG figure inlined, a table of values."""

from __future__ import annotations

import base64
import html

import numpy as np


def figure(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(columns, rows, limit: int | None = None) -> str:
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows[:limit])
    more = f'<p class="note">... {len(rows) - limit} more rows in the store.</p>' if limit and len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"
