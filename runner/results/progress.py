"""Progress while a run goes, and the summary at its end.

On a terminal: one live line (items done and failed, requests in flight,
retries) drawn with rich. In CI (no terminal): plain log lines, one per item,
that read well in a job log. Both go to stderr, so stdout stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from runner.diagnostics import one_line
from runner.recipe.prices import format_usd
from runner.results.manifest import NOT_RUN, ItemRecord, Totals

Snapshot = Callable[[], Mapping[str, int]]


class PlainReporter:
    """One line per finished item: ``[12/300] summaries/wildfires: ok (5 tasks, 2.1 s)``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.finished = 0

    def start(self, total: int) -> None:
        self.total = total
        print(f"Running {total} item{'s' if total != 1 else ''}.", file=self.stream, flush=True)

    def item_started(self, recipe: str, item: str) -> None:
        return None

    def item_finished(self, record: ItemRecord) -> None:
        self.finished += 1
        print(f"[{self.finished}/{self.total}] {describe(record)}", file=self.stream, flush=True)

    def stop(self) -> None:
        return None


class LiveReporter:
    """A live status line on a terminal (rich), plus a line for each failure."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.snapshot = snapshot
        self.total = 0
        self.done = 0
        self.failed = 0
        self.live = Live(console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._line)  # fmt: skip

    def _line(self) -> Any:
        extra = ""
        if self.snapshot is not None:
            snap = self.snapshot()
            extra = f" · in flight {snap.get('in_flight', 0)} · retries {snap.get('retries', 0)}"
        return f"items {self.done}/{self.total} · failed {self.failed}{extra}"

    def start(self, total: int) -> None:
        self.total = total
        self.live.start()

    def item_started(self, recipe: str, item: str) -> None:
        return None

    def item_finished(self, record: ItemRecord) -> None:
        self.done += 1
        if record.status != "ok":
            self.failed += 1
            self.console.print(f"[red]✗[/red] {describe(record)}", highlight=False)

    def stop(self) -> None:
        self.live.stop()


def describe(record: ItemRecord) -> str:
    where = f"{record.recipe}/{record.item}"
    if record.status == "ok":
        count = f"{len(record.tasks)} task{'s' if len(record.tasks) != 1 else ''}"
        not_run = sum(t.status == NOT_RUN for t in record.tasks)
        return f"{where}: ok ({count}" + (f", {not_run} not run)" if not_run else ")")
    if record.error:
        return f"{where}: {record.status}: {one_line(record.error)}"
    failed = [t for t in record.tasks if t.status in ("failed", "skipped")]
    if not failed:
        return f"{where}: {record.status}"
    first = failed[0]
    more = f" (and {len(failed) - 1} more: see run.json)" if len(failed) > 1 else ""
    cause = one_line(first.error or "")
    return f"{where}: {record.status}: {first.task} {first.status}: {cause}{more}"


def cost_text(totals: Totals, priced: bool) -> str:
    """What the run cost, as far as the price table knows; never $0.00 for the unknown."""
    if not priced and totals.unpriced:
        return (
            "unknown (no price table: add `prices:` to the recipe or pass --prices FILE; "
            "see docs/prices.example.yaml)"
        )
    parts = (
        f"transcription {format_usd(totals.transcription_cost)}, LLM {format_usd(totals.llm_cost)}"
    )
    if not totals.unpriced:
        return f"{format_usd(totals.cost)} ({parts})"
    unknown = [
        label if label.endswith(")") else f"{label} (no price in your table)"
        for label in sorted(totals.unpriced)
    ]
    return f"at least {format_usd(totals.cost)} ({parts}); unknown for {', '.join(unknown)}"


def summary_text(
    totals: Totals,
    *,
    outcome: str,
    wall: float,
    manifest: str,
    left: int,
    status_pages: int = 0,
    peak_budget_share: float = 0.0,
    tables: Sequence[str] = (),
    table_problem: str | None = None,
    priced: bool = False,
    report: str | None = None,
) -> str:
    """The end-of-run summary, as plain text (also what CI logs show).

    ``status_pages`` are the pages of the transcript list that status sweeps read, and
    ``peak_budget_share`` the most of the account's request budget (20,000 per 5
    minutes) they spent in any 5 minutes."""
    items = totals.items
    tasks = totals.tasks
    lines = [
        f"Run {outcome} in {wall:.1f} s.",
        f"  items: {items['ok']} ok, {items['failed']} failed"
        + (f", {items['interrupted']} interrupted" if items["interrupted"] else "")
        + (f", {left} not started" if left else ""),
        f"  tasks: {tasks['ok']} ok, {tasks['failed']} failed, {tasks['skipped']} skipped"
        + (f", {tasks[NOT_RUN]} not run" if tasks[NOT_RUN] else ""),
        f"  tokens: {totals.input_tokens} in, {totals.output_tokens} out"
        f" · audio: {totals.audio_seconds / 3600:.2f} h · retries: {totals.retries}",
    ]
    lines.append(f"  cost: {cost_text(totals, priced)}")
    if totals.reused or totals.cached:
        lines.append(
            f"  reused: {totals.reused} transcripts from the ledger, {totals.cached} replies "
            f"from the cache (sent: {totals.submitted} transcriptions, {totals.asked} LLM calls)"
        )
    if totals.transcripts_waited or status_pages:
        checks = totals.polls + status_pages
        per = checks / max(1, totals.transcripts_waited)
        sweeps = (
            f"{status_pages} list pages ({peak_budget_share:.1%} of the account's request "
            "budget at most) and "
            if status_pages
            else ""
        )
        lines.append(f"  status checks: {sweeps}{totals.polls} polls, {per:.2f} per transcript")
    if totals.not_run_reason:
        lines.append(f"  not run: {totals.not_run_reason}")
    if totals.failures:
        lines.append("  failures:")
        lines += [
            f"    {recipe}/{what}: {one_line(error)}" for recipe, what, error in totals.failures
        ]
    lines += [f"  table: {table}" for table in tables]
    if table_problem:
        lines.append(f"  table not written: {table_problem}")
    if report:
        lines.append(f"  report: {report}")
    lines.append(f"  manifest: {manifest}")
    return "\n".join(lines)
