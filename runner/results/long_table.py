"""The long tables beside a results table: what a row of one item cannot hold.

A results table has one row per item, and each task's cells are plain values. What
is a list of objects (a task's best quotes, a JSON reply's list of action items) would
spread over a column per field per entry (``best_quotes.0.quote`` …
``best_quotes.1.end_timestamp``), so it goes to a long table instead, one row per entry:

- ``quotes.csv`` (beside ``results.csv``; ``.jsonl`` beside a ``.jsonl`` table): each
  quote of each quotes task, ``item, task, rank, quote, start, end, verdict``;
- ``lists.csv``: each object of every other list, ``item, task, field, rank``, then the
  object's own fields (its lists of objects as JSON text).

The item's row keeps how many there were (``best_quotes`` = 2, ``notes.actions`` = 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

QUOTES = "quotes"
LISTS = "lists"
COMPANIONS = (QUOTES, LISTS)
QUOTE_COLUMNS = ("item", "task", "rank", "quote", "start", "end", "verdict")
LIST_COLUMNS = ("item", "task", "field", "rank")
LIST_SEPARATOR = "; "

LongRows = dict[str, list[dict[str, Any]]]  # companion name → its rows


def companion_path(table: Path, name: str) -> Path:
    """``results.csv`` → ``quotes.csv`` beside it, in the table's own format."""
    return table.with_name(f"{name}{table.suffix}")


def is_list_of_objects(value: Any) -> bool:
    return isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value)


def scalar_columns(
    value: Any, prefix: str, long: LongRows | None = None, *, item: str = "", task: str = ""
) -> dict[str, Any]:
    """``value`` as plain cells named by their path under ``prefix``: objects by their
    keys, lists of plain values joined with ``; ``, a list of objects as how many there
    are, its entries added to ``long`` (when given) as rows of the ``lists`` table.

    >>> scalar_columns({"title": "Q3", "tags": ["a", "b"], "who": [{"name": "Ann"}]}, "s")
    {'s.title': 'Q3', 's.tags': 'a; b', 's.who': 1}
    >>> scalar_columns(7, "score")
    {'score': 7}
    """
    if isinstance(value, Mapping):
        columns: dict[str, Any] = {}
        for key, inner in value.items():
            columns.update(scalar_columns(inner, f"{prefix}.{key}", long, item=item, task=task))
        return columns
    if is_list_of_objects(value):
        if long is not None:
            field = prefix.split(".", 1)[1] if "." in prefix else ""
            for rank, entry in enumerate(value, 1):
                row: dict[str, Any] = {"item": item, "task": task, "field": field, "rank": rank}
                row.update(_entry_cells(entry))
                long.setdefault(LISTS, []).append(row)
        return {prefix: len(value)}
    if isinstance(value, list | tuple):
        return {prefix: LIST_SEPARATOR.join("" if v is None else str(v) for v in value)}
    return {prefix: value}


def _entry_cells(entry: Any) -> dict[str, Any]:
    """One object of a list as cells: its plain fields as they are, the rest as JSON."""
    if not isinstance(entry, Mapping):
        return {"value": entry}
    cells: dict[str, Any] = {}
    for key, inner in entry.items():
        flat = scalar_columns(inner, str(key))
        cells.update(flat if not is_list_of_objects(inner) else {str(key): inner})
    return cells


def quote_rows(item: str, task: str, quotes: Sequence[Any]) -> list[dict[str, Any]]:
    """A quotes task's result, one row per quote, ranked as the task ranked them."""
    rows = []
    for rank, quote in enumerate(quotes, 1):
        entry = quote if isinstance(quote, Mapping) else {"quote": quote}
        rows.append(
            {
                "item": item,
                "task": task,
                "rank": rank,
                "quote": entry.get("quote"),
                "start": entry.get("start_timestamp", entry.get("start")),
                "end": entry.get("end_timestamp", entry.get("end")),
                "verdict": entry.get("verdict"),
            }
        )
    return rows
