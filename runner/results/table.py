"""The run's results table (``output.table``): one row per item, for spreadsheets.

Each row has the item's name, status, source and transcript, then one column per task:
the task's text, or for a task whose result is JSON its fields flattened into columns
(``summary.title``, ``summary.speakers.0.name`` for objects in lists; lists of plain
values joined with ``; ``). An export's column holds its file, not a subtitle file's
text. A task without a result leaves its cells empty.

Rows are spooled to disk as items finish, so 10,000 items hold no rows in memory. A
``.jsonl`` table is the spool itself, renamed; a ``.csv`` table needs every column for
its header, so it is written from the spool at the end, in a second pass.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runner.prompt.views import TaskResultView
from runner.recipe.model import Recipe
from runner.results.manifest import ItemRecord

ITEM_COLUMNS = ("item", "status", "source", "transcript_id", "audio_duration", "error")
LIST_SEPARATOR = "; "


def table_path(recipe: Recipe, manifest: Path) -> Path | None:
    """Where ``recipe``'s table goes: ``<manifest folder>/<recipe name>/<table>``."""
    if recipe.table is None:
        return None
    return manifest.parent / recipe.name / recipe.table


def row_of(
    record: ItemRecord, results: Mapping[str, TaskResultView | None], recipe: Recipe
) -> dict[str, Any]:
    """One item's row: its own columns, then each task's, in recipe order. A task that
    did not succeed leaves its cells empty; ``error`` holds the item's error, or its
    first failed task's."""
    records = {task.task: task for task in record.tasks}
    failed = next((t for t in record.tasks if t.status != "ok" and t.error), None)
    row: dict[str, Any] = {
        "item": record.item,
        "status": record.status,
        "source": record.source,
        "transcript_id": record.transcript_id,
        "audio_duration": record.audio_duration,
        "error": record.error or (f"{failed.task}: {failed.error}" if failed else None),
    }
    for name, task in recipe.tasks.items():
        task_record = records.get(name)
        result = results.get(name) if task_record and task_record.status == "ok" else None
        if result is None:
            if not task.structured:  # a JSON task's columns come from its fields
                row[name] = None
        elif task.export is not None:
            row[name] = task_record.output if task_record else None
        elif task.structured and result.json is not None:
            row.update(flatten(result.json, name))
        else:
            row[name] = result.text
    return row


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """``value`` as columns named by their path under ``prefix``.

    >>> flatten({"title": "Q3", "tags": ["a", "b"], "who": [{"name": "Ann"}]}, "s")
    {'s.title': 'Q3', 's.tags': 'a; b', 's.who.0.name': 'Ann'}
    >>> flatten(7, "score")
    {'score': 7}
    """
    if isinstance(value, Mapping):
        columns: dict[str, Any] = {}
        for key, inner in value.items():
            columns.update(flatten(inner, f"{prefix}.{key}"))
        return columns
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return {prefix: LIST_SEPARATOR.join("" if v is None else str(v) for v in value)}
        columns = {}
        for index, inner in enumerate(value):
            columns.update(flatten(inner, f"{prefix}.{index}"))
        return columns
    return {prefix: value}


@dataclass
class _Table:
    path: Path
    spool: Path
    handle: IO[str]
    task_order: dict[str, int]
    columns: dict[str, None] = field(default_factory=dict)  # in first-seen order

    def ordered_columns(self) -> list[str]:
        """The item's columns, then each task's in recipe order (a JSON task's fields in
        the order they were first seen), whichever item finished first."""
        first_seen = {column: index for index, column in enumerate(self.columns)}

        def key(column: str) -> tuple[int, int]:
            task = column.split(".", 1)[0]
            return (self.task_order.get(task, -1), first_seen[column])

        return sorted(self.columns, key=key)


class Tables:
    """The tables of one run, one per recipe that asks for one. Not thread-safe: call
    it from one thread (the executor's output thread)."""

    def __init__(self) -> None:
        self._open: dict[str, _Table] = {}
        self.problem: str | None = None  # the first table that could not be written

    def add(self, recipe: Recipe, manifest: Path, row: Mapping[str, Any]) -> None:
        """Spool ``row`` to ``recipe``'s table (opened on its first row). A table that
        cannot be written is reported at the end; it never fails an item or the run."""
        try:
            self._add(recipe, manifest, row)
        except OSError as exc:
            self.problem = self.problem or f"{table_path(recipe, manifest)}: {exc.strerror or exc}"

    def _add(self, recipe: Recipe, manifest: Path, row: Mapping[str, Any]) -> None:
        table = self._open.get(recipe.name)
        if table is None:
            path = table_path(recipe, manifest)
            if path is None:
                return
            table = self._start(recipe, path)
        for column in row:
            table.columns.setdefault(column, None)
        table.handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        table.handle.flush()

    def _start(self, recipe: Recipe, path: Path) -> _Table:
        path.parent.mkdir(parents=True, exist_ok=True)
        spool = path.with_name(f".{path.name}.{os.getpid()}.rows")
        order = {name: index for index, name in enumerate(recipe.tasks)}
        table = _Table(path, spool, spool.open("w", encoding="utf-8"), order)
        for column in ITEM_COLUMNS:
            table.columns[column] = None
        self._open[recipe.name] = table
        return table

    def close(self) -> list[Path]:
        """Write every table (also after an interrupted run: the items that finished);
        the paths written."""
        written = []
        for table in self._open.values():
            table.handle.close()
            try:
                if table.path.suffix == ".jsonl":
                    os.replace(table.spool, table.path)
                else:
                    _write_csv(table)
                written.append(table.path)
            except OSError as exc:
                self.problem = self.problem or f"{table.path}: {exc.strerror or exc}"
            finally:
                table.spool.unlink(missing_ok=True)
        self._open.clear()
        return written


def _write_csv(table: _Table) -> None:
    """The spooled rows as CSV, with every column any row had, streamed to a temporary
    file and renamed: the table is whole or absent, never half written."""
    temporary = table.path.with_name(f".{table.path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            columns = table.ordered_columns()
            writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in _rows(table.spool):
                writer.writerow({key: _cell(value) for key, value in row.items()})
        os.replace(temporary, table.path)
    finally:
        temporary.unlink(missing_ok=True)


def _rows(spool: Path) -> Iterator[dict[str, Any]]:
    with spool.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _cell(value: Any) -> Any:
    """A cell: nothing for null, JSON for what flattening left (an empty object)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
