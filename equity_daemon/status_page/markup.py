"""The status page's building blocks: tables and badges.

A table is a titled block of rows under named columns. On a wide screen it scrolls sideways in
its box if it must. On a phone (`style.py`) a table of more than `NARROW_COLUMNS` columns is
`stack`ed: each row becomes a block, its first cell the title and every other a "column: value"
line (each cell carries its column's name in `data-label`), so no column is ever cut off; a
narrower table stays a table, its cells wrapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

NARROW_COLUMNS = 3  # a table this narrow fits a phone's width as it is


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its `title` (plain text) and the `style` of its cells: `num` (a number:
    right-aligned), `prose` (text that wraps; other cells do not on a wide screen) or none."""

    title: str
    style: str = ""


def num(title: str) -> Column:
    return Column(title, "num")


def prose(title: str) -> Column:
    return Column(title, "prose")


def table(
    title: str,
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[str]],
    level: str = "h3",
) -> str:
    """A titled table; `rows` hold each cell's HTML, escaped already."""
    heads = [column if isinstance(column, Column) else Column(column) for column in columns]
    header = "".join(f"<th{_class(column)}>{escape(column.title)}</th>" for column in heads)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td{_class(column)} data-label="{escape(column.title)}">{cell}</td>'
            for column, cell in zip(heads, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(heads)}" class="muted">none</td></tr>'
    stacked = ' class="stack"' if len(heads) > NARROW_COLUMNS else ""
    return (
        f'<div class="block"><{level}>{escape(title)}</{level}><div class="scroll">'
        f"<table{stacked}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
        "</div></div>"
    )


def _class(column: Column) -> str:
    return f' class="{column.style}"' if column.style else ""


def badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{escape(text)}</span>'
