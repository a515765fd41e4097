"""Where each item of a run lands: the manifest, the results table, the progress display.

The executor tells the recorder when an item starts and when it finishes, and the
recorder does every write that follows, in the order that keeps the finished work:
the manifest first (a Ctrl-C during the table's write must not lose an item from
run.json), then the progress display, then the table's row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner.items import Item, Shard
from runner.prompt.views import TaskResultView
from runner.recipe.model import InputKind, Recipe, thaw
from runner.recipe.prices import PriceTable
from runner.results.long_table import LongRows
from runner.results.manifest import ManifestWriter
from runner.results.records import ItemRecord
from runner.results.table import Tables, row_of
from runner.serial_thread import SerialThread


class ItemListener(Protocol):
    """Who hears of each item as it starts and finishes (the progress display)."""

    def item_started(self, recipe: str, item: str) -> None: ...
    def item_finished(self, record: ItemRecord) -> None: ...


@dataclass
class RunOutcome:
    manifest: Path
    outcome: str  # completed, interrupted, timed out
    wall_seconds: float
    writer: ManifestWriter
    not_started: int = 0
    tables: tuple[Path, ...] = ()  # output.table files written
    table_problem: str | None = None  # why a table could not be written

    @property
    def failed(self) -> bool:
        totals = self.writer.totals
        return bool(
            self.outcome != "completed"
            or totals.items["failed"]
            or totals.groups["failed"]
            or totals.tasks["failed"]
            or totals.tasks["skipped"]
            or totals.rates.below()
        )


class Recorder:
    """Records a run's items as they start and finish, streaming the manifest."""

    def __init__(
        self,
        manifest: Path,
        recipes: Sequence[Recipe],
        listener: ItemListener,
        files: SerialThread,
        *,
        shard: Shard | None = None,
        prices: Mapping[str, PriceTable] | None = None,
    ) -> None:
        self.manifest = manifest
        self.writer = ManifestWriter(
            manifest,
            {
                "recipes": [_recipe_entry(recipe) for recipe in recipes],
                "shard": f"{shard.index}/{shard.count}" if shard else None,
            },
            prices,
        )
        self._listener = listener
        # The table's rows are written on the outputs' thread, after the item's files.
        self._files = files
        self._tables = Tables()
        self._under_way: dict[tuple[str, str], ItemRecord] = {}

    def started(self, recipe: Recipe, item: Item) -> ItemRecord:
        """The item's record, kept so that a run that stops still lists it."""
        record = ItemRecord(
            recipe=recipe.name,
            item=item.name,
            source=item.source,
            recipe_file=recipe.display,
            kind=item.kind.value,
            status="ok",
            row=item.origin if recipe.inputs[item.entry].kind is InputKind.LIST else None,
        )
        self._under_way[(recipe.name, item.name)] = record
        self._listener.item_started(recipe.name, item.name)
        return record

    async def finished(
        self,
        recipe: Recipe,
        record: ItemRecord,
        results: Mapping[str, TaskResultView | None],
    ) -> None:
        """A finished item, and each task's result (for the results table)."""
        self._under_way.pop((record.recipe, record.item), None)
        # Into the manifest before anything else is awaited: a Ctrl-C during the
        # table's write must not lose a finished item from run.json.
        self.writer.add(record)
        self._listener.item_finished(record)
        if recipe.table is not None:
            long: LongRows = {}
            row = row_of(record, results, recipe, long)
            await self._files.call(self._tables.add, recipe, self.manifest, row, long)

    def close(self, outcome: str, wall: float, *, loop_lag: float, not_started: int) -> RunOutcome:
        """Close the tables, list the items still under way as interrupted, and
        finish the manifest. The outputs' thread must be closed first, so that every
        output queued is written before the manifest says what exists."""
        tables = self._tables.close()
        for record in self._under_way.values():
            record.status = "interrupted"
            record.error = record.error or f"the run was {outcome} before this item finished"
            self.writer.add(record)
        self._under_way.clear()
        path = self.writer.close(outcome, wall, loop_lag=loop_lag)
        return RunOutcome(
            path,
            outcome,
            wall,
            self.writer,
            not_started=not_started,
            tables=tuple(tables),
            table_problem=self._tables.problem,
        )


def _recipe_entry(recipe: Recipe) -> dict[str, Any]:
    """The recipe as the manifest lists it; with its ``table``, so ``merge`` finds the
    tables of a sharded run's shards, and the vars the command line set (``--var``,
    ``--vars``), so a run says which audience its prompts were written for."""
    entry: dict[str, Any] = {"name": recipe.name, "file": recipe.display}
    if recipe.table is not None:
        entry["table"] = recipe.table
    if recipe.var_overrides:
        entry["vars"] = thaw(recipe.var_overrides)
    return entry
