"""Small HTML pieces shared by the report's sections, and its style sheet."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["CSS", "share", "table"]


def share(n: int, d: int) -> str:
    """`n` of `d` as a percentage ("–" when `d` is 0)."""
    return f"{100 * n / d:.1f}%" if d else "–"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, text: Sequence[int] = ()
) -> str:
    """A table of plain-text cells (escaped); columns in `text` are aligned left."""
    head = "".join(
        f"<th class='text'>{escape(h)}</th>" if i in text else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='text'>{escape(str(c))}</td>" if i in text else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
small{color:#666;font-weight:normal}.totals{font-size:15px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f4f7}
td.text,th.text{text-align:left;color:#444}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:220px;font-size:11px;overflow-wrap:break-word}
figure img{width:220px;border:1px solid #bbb;display:block}
a.thumb:hover img{border-color:#3b6ea8}
.path{font-family:ui-monospace,monospace;font-size:11px;cursor:help}
.flag{color:#8a4b00}
.note{color:#555;font-style:italic}
.warn{background:#fff4e0;border-left:4px solid #d9822b;padding:6px 10px}
.inputs{font-size:13px;color:#444;margin:2px 0}
.missing{width:220px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center}
"""
