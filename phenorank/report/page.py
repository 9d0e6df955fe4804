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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def render(sections: list[str], style: str, store_path: str, summary: str, command: str) -> str:
    """The page from its sections (HTML, each opening with an <h2>): anchors and a table of
    contents from the headings, through the Jinja2 template in ``templates/report.html.j2``."""
    import re
    from datetime import datetime, timezone
    from pathlib import Path

    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from .. import __version__

    contents, anchored = [], []
    for chunk in sections:
        def anchor(match):
            name = f"s{len(contents) + 1}"
            contents.append({"anchor": name, "title": html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))})
            return f'<h2 id="{name}">{match.group(1)}</h2>'

        anchored.append({"anchor": "", "html": re.sub(r"<h2>(.*?)</h2>", anchor, chunk, flags=re.S)})
    environment = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                              autoescape=select_autoescape(["html", "j2"]))
    return environment.get_template("report.html.j2").render(
        style=style, store_name=Path(store_path).name, store_path=store_path, summary=summary, sections=anchored,
        contents=contents, made_at=f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}", command=command,
        version=__version__)
