"""GitHub workflow commands that annotate the recipe line of each failure (the list
file's row, for an item of a list that failed before its tasks)."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from runner.diagnostics import workflow_command
from runner.results.manifest import (
    Manifest,
    failed_expectations,
    item_records,
    ordered_by_recipe,
    warned_expectations,
)
from runner.results.rates import Shortfall
from runner.results.records import ItemRecord, totals_of

MAX_ANNOTATIONS = 50  # workflow commands printed, the final notice included
NAMES_SHOWN = 3  # item names quoted in an annotation shared by many items


@dataclass(frozen=True)
class _Problem:
    """One annotation's content, minus the item: equal problems of many items merge."""

    file: str
    line: int
    title: str
    task: str  # "" for an item-level failure
    message: str
    level: str = "error"  # warning: a check that fails nothing (warn, or under a pass_rate)


def annotations(manifest: Manifest) -> list[str]:
    """``::error`` workflow commands pointing at the recipe line of each failure.

    The same failure on many items (a bad prompt fails every item at the same task
    line) becomes one annotation naming how many items and the first few, and the
    list stops at 50 with a notice: GitHub shows only a few annotations per step
    anyway, and a 10,000-item run must not print 10,000 lines.
    """
    grouped: dict[_Problem, list[str]] = {}
    records = item_records(manifest)
    for _, group in ordered_by_recipe(manifest, records):
        for record in group:
            for problem in _problems(record):
                # A list row's item names its row: the line to fix may be there.
                who = f"{record.item} ({record.row})" if record.row else record.item
                grouped.setdefault(problem, []).append(who)
    lines = [_shortfall(shortfall, records) for shortfall in totals_of(records).rates.below()]
    lines += [_annotation(problem, items) for problem, items in grouped.items()]
    if len(lines) <= MAX_ANNOTATIONS:
        return lines
    shown = lines[: MAX_ANNOTATIONS - 1]
    hidden = len(lines) - len(shown)
    notice = f"{hidden} more failures are not annotated; the run manifest lists every one"
    return [*shown, workflow_command("notice", notice, title="transcript-runner")]


def _problems(record: ItemRecord) -> Iterator[_Problem]:
    file = record.recipe_file
    if record.error:
        # An item of a list file failed before its tasks (its source, its transcript):
        # the annotation points at its row, where its source is written.
        row_file, _, row_line = (record.row or "").rpartition(":")
        if row_file and row_line.isdigit():
            yield _Problem(row_file, int(row_line), f"item {record.status}", "", record.error)
        else:
            yield _Problem(file, 0, f"item {record.status}", "", record.error)
    for task in record.tasks:
        failed = failed_expectations(task)
        # Under a pass_rate an item's failed check is told, as a warning: the rate decides.
        level = "error" if task.pass_rate is None else "warning"
        for expectation in failed:
            line = expectation.line if expectation.line > 0 else task.line
            message = expectation.message or f"expectation {expectation.expect} failed"
            title = f"expectation failed in {task.task}"
            yield _Problem(file, line, title, task.task, message, level)
        for expectation in warned_expectations(task):
            message = expectation.reason or expectation.message or "failed"
            title = f"warning (severity: warn) in {task.task}"
            yield _Problem(file, expectation.line, title, task.task, message, "warning")
        if task.status == "failed" and not failed:
            yield _Problem(
                file, task.line, f"task {task.task} failed", task.task, task.error or "failed"
            )


def _shortfall(shortfall: Shortfall, records: Sequence[ItemRecord]) -> str:
    """A task's pass rate below its ``pass_rate``, at its first failing check's line."""
    gate = shortfall.gate
    file = next((r.recipe_file for r in records if r.recipe == gate.recipe), "")
    lines = [c.line for c in shortfall.checks if c.line > 0]
    return workflow_command(
        "error",
        shortfall.words(),
        title=f"pass rate below pass_rate in {gate.task}",
        file=file,
        line=min(lines, default=0),
    )


def _annotation(problem: _Problem, items: Sequence[str]) -> str:
    who = _who(items)
    where = f"{who} · {problem.task}" if problem.task else who
    return workflow_command(
        problem.level,
        f"{where}: {problem.message}",
        title=problem.title,
        file=problem.file,
        line=problem.line,
    )


def _who(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    names = ", ".join(items[:NAMES_SHOWN])
    more = f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else ""
    return f"{len(items):,} items ({names}{more})"
