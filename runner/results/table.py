"""The run's results table (``output.table``): one row per item, for spreadsheets.

Each row has the item's name, status, source and transcript (and its word error rate,
``wer``, with each compared engine's beside it, when the recipe checks its
transcripts), then one column per task:
the task's text, or for a task whose result is JSON its fields flattened into columns
(``summary.title``, ``summary.speakers.0.name`` for objects in lists; lists of plain
values joined with ``; ``). An export's column holds its file, not a subtitle file's
text. A task without a result leaves its cells empty.

Rows are spooled to disk as items finish, so 10,000 items hold no rows in memory. A
``.jsonl`` table is the spool itself, renamed; a ``.csv`` table needs every column for
its header, so it is written from the spool at the end, in a second pass.

``merge`` combines the tables of a run's shards the same way (:func:`table_merges`,
:func:`write_merged`): rows streamed from each shard's table in turn, and a ``.csv``
header read first from every shard's own header.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runner.jsonl import JsonLineError, read_objects
from runner.prompt.views import TaskResultView
from runner.recipe.model import Recipe
from runner.results.long_table import (
    COMPANIONS,
    LIST_COLUMNS,
    QUOTE_COLUMNS,
    QUOTES,
    LongRows,
    companion_path,
    quote_rows,
    scalar_columns,
)
from runner.results.manifest import Manifest
from runner.results.outputs import atomic_stream
from runner.results.records import ItemRecord

ITEM_COLUMNS = ("item", "status", "source", "transcript_id", "audio_duration", "error")


def table_path(recipe: Recipe, manifest: Path) -> Path | None:
    """Where ``recipe``'s table goes: ``<manifest folder>/<recipe name>/<table>``."""
    if recipe.table is None:
        return None
    return table_location(manifest, recipe.name, recipe.table)


def table_location(manifest: Path, recipe: str, table: str) -> Path:
    """``<manifest folder>/<recipe>/<table>``, for a recipe known by its names alone."""
    return manifest.parent / recipe / table


def row_of(
    record: ItemRecord,
    results: Mapping[str, TaskResultView | None],
    recipe: Recipe,
    long: LongRows | None = None,
) -> dict[str, Any]:
    """One item's row: its own columns, then each task's plain cells, in recipe order.
    A task that did not succeed leaves its cells empty; ``error`` holds the item's
    error, or its first failed task's. Lists of objects (quotes, a reply's list of
    records) are counted here and go to ``long``, the long tables' rows."""
    records = {task.task: task for task in record.tasks}
    failed = next((t for t in record.tasks if t.status != "ok" and t.error), None)
    row: dict[str, Any] = {
        "item": record.item,
        "status": record.status,
        "source": _source(record, recipe),
        "transcript_id": record.transcript_id,
        "audio_duration": record.audio_duration,
        "error": record.error or (f"{failed.task}: {failed.error}" if failed else None),
    }
    row.update(wer_columns(record))
    for name, task in recipe.tasks.items():
        task_record = records.get(name)
        result = results.get(name) if task_record and task_record.status == "ok" else None
        if result is None:
            if not task.structured:  # a JSON task's columns come from its fields
                row[name] = None
        elif task.export is not None:
            row[name] = task_record.output if task_record else None
        elif task.quotes is not None and isinstance(result.json, list | tuple):
            row[name] = len(result.json)
            if long is not None:
                long.setdefault(QUOTES, []).extend(quote_rows(record.item, name, result.json))
        elif task.structured and result.json is not None:
            row.update(scalar_columns(result.json, name, long, item=record.item, task=name))
        else:
            row[name] = result.text
    return row


def wer_columns(record: ItemRecord) -> dict[str, float | None]:
    """The item's word error rate (``wer``: the primary transcript's) and each compared
    engine's (``wer ENGINE``), when the recipe checks or compares its transcripts."""
    return {
        "wer" if made.primary else f"wer {made.engine}": made.wer for made in record.transcriptions
    }


def _source(record: ItemRecord, recipe: Recipe) -> str:
    """A file's path relative to the recipe (as the recipe names it), so the table
    reads the same on every machine; a URL or transcript id as it is."""
    if record.kind not in ("file", "transcript_file") or not os.path.isabs(record.source):
        return record.source
    try:
        return Path(os.path.relpath(record.source, recipe.base_dir)).as_posix()
    except ValueError:  # another drive, on Windows
        return record.source


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """``value`` as plain cells (see :func:`~runner.results.long_table.scalar_columns`).

    >>> flatten({"title": "Q3", "tags": ["a", "b"], "who": [{"name": "Ann"}]}, "s")
    {'s.title': 'Q3', 's.tags': 'a; b', 's.who': 1}
    """
    return scalar_columns(value, prefix)


@dataclass
class _Table:
    path: Path
    spool: Path
    handle: IO[str]
    task_order: dict[str, int]
    columns: dict[str, None] = field(default_factory=dict)  # in first-seen order

    def ordered_columns(self) -> list[str]:
        return ordered_columns(self.columns, self.task_order)


def ordered_columns(columns: Iterable[str], task_order: Mapping[str, int]) -> list[str]:
    """``columns`` (in first-seen order) as a table orders them: the item's columns,
    then each task's in recipe order (``task_order``; a JSON task's fields in the order
    they were first seen), whichever item finished first."""
    first_seen = {column: index for index, column in enumerate(dict.fromkeys(columns))}

    def key(column: str) -> tuple[int, int]:
        return (task_order.get(_task_of(column), -1), first_seen[column])

    return sorted(first_seen, key=key)


def _task_of(column: str) -> str:
    return column.split(".", 1)[0]


class Tables:
    """The tables of one run, one per recipe that asks for one. Not thread-safe: call
    it from one thread (the executor's output thread)."""

    def __init__(self) -> None:
        self._open: dict[str, _Table] = {}
        self.problem: str | None = None  # the first table that could not be written

    def add(
        self,
        recipe: Recipe,
        manifest: Path,
        row: Mapping[str, Any],
        long: LongRows | None = None,
    ) -> None:
        """Spool ``row`` to ``recipe``'s table (opened on its first row), and ``long``'s
        rows to the long tables beside it. A table that cannot be written is reported
        at the end; it never fails an item or the run."""
        path = table_path(recipe, manifest)
        if path is None:
            return
        try:
            self._add(recipe.name, path, ITEM_COLUMNS, [row], recipe)
            for name, rows in (long or {}).items():
                first = QUOTE_COLUMNS if name == QUOTES else LIST_COLUMNS
                self._add(f"{recipe.name}/{name}", companion_path(path, name), first, rows)
        except OSError as exc:
            self.problem = self.problem or f"{path}: {exc.strerror or exc}"

    def _add(
        self,
        key: str,
        path: Path,
        first: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        recipe: Recipe | None = None,
    ) -> None:
        table = self._open.get(key)
        if table is None:
            table = self._start(key, path, first, recipe)
        for row in rows:
            for column in row:
                table.columns.setdefault(column, None)
            table.handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        table.handle.flush()

    def _start(self, key: str, path: Path, first: Sequence[str], recipe: Recipe | None) -> _Table:
        path.parent.mkdir(parents=True, exist_ok=True)
        spool = path.with_name(f".{path.name}.{os.getpid()}.rows")
        order = {name: index for index, name in enumerate(recipe.tasks)} if recipe else {}
        table = _Table(path, spool, spool.open("w", encoding="utf-8"), order)
        for column in first:
            table.columns[column] = None
        self._open[key] = table
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
            _write_csv_rows(out, table.ordered_columns(), _rows(table.spool))
        os.replace(temporary, table.path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_csv_rows(
    out: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> None:
    """A header of ``columns``, then ``rows``, a cell left empty where a row lacks one."""
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})


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


# --- merging the tables of shards ------------------------------------------------------


@dataclass(frozen=True)
class ShardTable:
    """One shard's part of a merged table."""

    label: str  # the shard's manifest, as given
    path: Path | None  # its table; None when its manifest names none for the recipe
    items: int  # the recipe's items its manifest lists: the rows its table should hold


@dataclass(frozen=True)
class TableMerge:
    """The table ``merge`` writes for one recipe, and the shards' tables it is made of."""

    recipe: str
    path: Path  # beside the merged manifest: <folder>/<recipe>/<table>
    shards: tuple[ShardTable, ...]


def table_merges(
    manifests: Sequence[Manifest], sources: Sequence[Path], out: Path
) -> list[TableMerge]:
    """The tables a merge of ``manifests`` (read from ``sources``) into ``out`` writes:
    one per recipe that a shard's manifest names a table for (``recipes[].table``), in
    the merged manifest's recipe order. A ValueError when a manifest names a table that
    is no plain file name, when shards name different tables for one recipe, or when the
    merged table would replace a shard's own."""
    tables: dict[str, dict[str, str]] = {}  # recipe -> table -> the first manifest naming it
    for source, manifest in zip(sources, manifests, strict=True):
        for recipe, table in _declared_tables(manifest, str(source)):
            tables.setdefault(recipe, {}).setdefault(table, str(source))
    merges = []
    for recipe, named in tables.items():
        if len(named) > 1:
            shown = ", ".join(f"{table} (in {label})" for table, label in named.items())
            raise ValueError(
                f"the manifests name different tables for recipe {recipe}: {shown}; merge "
                "the shards of one run"
            )
        (table,) = named
        path = table_location(out, recipe, table)
        shards = []
        for source, manifest in zip(sources, manifests, strict=True):
            declared = dict(_declared_tables(manifest, str(source)))
            own = table_location(source, recipe, table) if recipe in declared else None
            if own is not None and own.resolve() == path.resolve():
                raise ValueError(
                    f"the merged table {path} would replace {source}'s own table; write the "
                    "merged manifest to another folder with --out FILE"
                )
            items = sum(1 for item in manifest["items"] if item.get("recipe") == recipe)
            shards.append(ShardTable(str(source), own, items))
        merges.append(TableMerge(recipe, path, tuple(shards)))
        merges += _companion_merges(merges[-1])
    return merges


def _companion_merges(merge: TableMerge) -> list[TableMerge]:
    """The long tables beside a merged table (``quotes.csv``, ``lists.csv``), from the
    shards that wrote one; a shard without one had no such rows, so lacks none."""
    found = []
    for name in COMPANIONS:
        shards = tuple(
            ShardTable(shard.label, companion_path(shard.path, name) if shard.path else None, 0)
            for shard in merge.shards
        )
        if any(shard.path is not None and shard.path.is_file() for shard in shards):
            found.append(TableMerge(merge.recipe, companion_path(merge.path, name), shards))
    return found


def _declared_tables(manifest: Manifest, label: str) -> list[tuple[str, str]]:
    """The (recipe, table) pairs ``manifest``'s ``recipes`` name. Both become path
    segments, so each must be one plain name: no folder, no ``..``."""
    pairs = []
    for entry in manifest.get("recipes") or ():
        if not isinstance(entry, Mapping) or entry.get("table") is None:
            continue
        recipe, table = entry.get("name"), entry.get("table")
        if not (_plain_name(recipe) and _plain_name(table)) or not str(table).endswith(
            (".csv", ".jsonl")
        ):
            raise ValueError(
                f"{label}: recipe {recipe!r} names the table {table!r}; a table is a file "
                "name ending in .csv or .jsonl, in a folder named after its recipe"
            )
        pairs.append((str(recipe), str(table)))
    return pairs


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(sep in name for sep in ("/", "\\", "\0"))
    )


def write_merged(merge: TableMerge) -> tuple[bool, list[str]]:
    """Write ``merge.path`` from its shards' tables, streamed, a row at a time: whether
    it was written (some shard's table was found), and a warning for each shard whose
    rows it lacks. Rows come in the order of the shards, as the merged manifest lists
    their items; a ``.csv`` header is every column of the shards' headers, ordered as a
    run orders them (see :func:`ordered_columns`). A table that cannot be read, or is
    not a table, is a ValueError naming the file; a write error, an ``OutputError``."""
    found, warnings = _present(merge)
    if not found:
        return False, warnings
    with atomic_stream(merge.path) as out:
        if merge.path.suffix == ".csv":
            headers = [_csv_header(path) for path in found]
            columns = ordered_columns(
                (column for header in headers for column in header), _task_order(headers)
            )
            _write_csv_rows(out, columns, (row for path in found for row in _csv_rows(path)))
        else:
            for path in found:
                for row in _jsonl_rows(path):
                    out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return True, warnings


def _present(merge: TableMerge) -> tuple[list[Path], list[str]]:
    """The shards' tables that exist, and a warning for each shard whose rows are
    missing: no table where its manifest lists the recipe's items, or the table of
    another shard (two manifests in one folder share one table path)."""
    found: list[Path] = []
    warnings: list[str] = []
    seen: dict[Path, str] = {}
    for shard in merge.shards:
        rows = f"{shard.items} row{'s' if shard.items != 1 else ''}"
        lacks = f"the merged table {merge.path} lacks the {rows} of {shard.label}"
        if shard.path is None:
            if shard.items:
                warnings.append(f"{shard.label} names no table for {merge.recipe}; {lacks}")
            continue
        resolved = shard.path.resolve()
        if resolved in seen:
            warnings.append(
                f"{shard.path} is also the table of {seen[resolved]} (their manifests share a "
                f"folder), so it is merged once; {lacks}"
            )
        elif shard.path.is_file():
            seen[resolved] = shard.label
            found.append(shard.path)
        elif shard.items:
            warnings.append(f"{shard.path}: no such table; {lacks}")
    return found, warnings


def _task_order(headers: Sequence[Sequence[str]]) -> dict[str, int]:
    """The recipe's task order, as the shards' headers show it: each header lists its
    tasks in recipe order, but a JSON task without a result in a shard has no column
    there. A task one header lacks goes before the first task after it in a header that
    has it (or last), so every header's order holds; ties go to the first seen."""
    order: list[str] = []
    for header in headers:
        tasks = list(dict.fromkeys(_task_of(c) for c in header if c not in ITEM_COLUMNS))
        for index, task in enumerate(tasks):
            if task in order:
                continue
            after = next((t for t in tasks[index + 1 :] if t in order), None)
            order.insert(order.index(after) if after is not None else len(order), task)
    return {task: index for index, task in enumerate(order)}


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as lines:
            header = next(csv.reader(lines), None)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(_unreadable(path, exc)) from None
    if not header:
        raise ValueError(f"{path}: not a results table (no header line)")
    return header


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    _allow_long_cells()
    try:
        with path.open(encoding="utf-8", newline="") as lines:
            reader = csv.DictReader(lines)
            start = 2  # the line a row starts on (a cell may hold line breaks)
            for row in reader:
                if None in row:
                    raise ValueError(
                        f"{path}:{start}: not a results table (a row has more cells than "
                        "the header has columns)"
                    )
                yield row
                start = reader.line_num + 1
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(_unreadable(path, exc)) from None


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        for _, row in read_objects(path):
            yield row
    except JsonLineError as exc:
        raise ValueError(f"{path}:{exc.line}: not a results table ({exc.reason})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(_unreadable(path, exc)) from None


def _unreadable(path: Path, exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{path}: not a results table (not UTF-8 text)"
    return f"{path}: not a results table ({exc})"


LONGEST_CELL = 2**31 - 1  # characters (what the csv module accepts on every platform)


def _allow_long_cells() -> None:
    """A task's text may be longer than the csv module reads by default (128 KiB)."""
    if csv.field_size_limit() < LONGEST_CELL:
        csv.field_size_limit(LONGEST_CELL)
