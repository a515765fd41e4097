"""Progress while a run goes, and the summary at its end.

On a terminal: one live line drawn with rich: the time so far, items done and failed,
where the others are (queued, uploading, transcribing, waiting for a slot, asking,
writing), retries (the same count the summary gives) and an estimate of what remains.
In CI (no terminal): a plain log line per finished item, and a heartbeat every 30 s
while none finishes.
Both go to stderr, so stdout stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from runner.diagnostics import one_line
from runner.recipe.prices import format_usd
from runner.results.rates import percent
from runner.results.records import NOT_RUN, ItemRecord, Totals

HEARTBEAT_SECONDS = 30.0

# Where items are, in the order they go through a run, as a person reads them.
PHASE_WORDS = (
    ("queued", "queued"),
    ("uploading", "uploading"),
    ("transcribing", "transcribing"),
    ("ready", "waiting for a slot"),
    ("asking", "asking"),
    ("writing", "writing"),
)


def phases_text(phases: Mapping[str, int]) -> str:
    """``transcribing 30 · asking 12`` (phases with no item left out)."""
    return " · ".join(f"{word} {phases[key]}" for key, word in PHASE_WORDS if phases.get(key))


def clock(seconds: float) -> str:
    """``1:05`` or ``1:02:03``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


SETTLED_AFTER = 20  # items done before the pace so far says the time left alone


def time_left(elapsed: float, done: int, total: int, per_item: float | None) -> float | None:
    """Seconds left: the forecast's (``per_item`` seconds for each item not done, when
    the Gateway's rates bind the run) or the pace so far, whichever is longer, until
    SETTLED_AFTER items are done; then the pace so far (a rerun that finds most replies
    cached goes faster than any forecast). None before anything can be said."""
    remaining = total - done
    if remaining <= 0:
        return None
    by_pace = elapsed / done * remaining if done else None
    if by_pace is not None and done >= SETTLED_AFTER:
        # The pace has met the rates by now (the buckets space requests from the first),
        # and it knows what the forecast cannot: replies found in the cache.
        return by_pace
    by_rate = per_item * remaining if per_item else None
    known = [left for left in (by_pace, by_rate) if left is not None]
    return max(known) if known else None


class PlainProgress:
    """One line per finished item: ``[12/300] summaries/wildfires: ok (5 tasks)``, and
    ``[0:30] 12/300 done · transcribing 30 · asking 12`` every 30 s while none finishes,
    so a CI log shows the run is alive."""

    def __init__(
        self,
        stream: TextIO | None = None,
        clock_: Callable[[], float] = time.monotonic,
        per_item: float | None = None,
    ) -> None:
        """``per_item``: the forecast's seconds for each item, for the time left."""
        self.stream = stream or sys.stderr
        self.total = 0
        self.finished = 0
        self.per_item = per_item
        self._clock = clock_
        self._began = self._last_line = clock_()

    def start(self, total: int) -> None:
        self.total = total
        self._began = self._last_line = self._clock()
        print(f"Running {total} item{'s' if total != 1 else ''}.", file=self.stream, flush=True)

    def item_started(self, recipe: str, item: str) -> None:
        return None

    def item_finished(self, record: ItemRecord) -> None:
        self.finished += 1
        self._last_line = self._clock()
        print(f"[{self.finished}/{self.total}] {describe(record)}", file=self.stream, flush=True)

    def tick(self, phases: Mapping[str, int]) -> None:
        now = self._clock()
        if now - self._last_line < HEARTBEAT_SECONDS:
            return
        self._last_line = now
        where = phases_text(phases)
        left = time_left(now - self._began, self.finished, self.total, self.per_item)
        print(
            f"[{clock(now - self._began)}] {self.finished}/{self.total} done"
            + (f" · {where}" if where else "")
            + (f" · about {clock(left)} left" if left is not None else ""),
            file=self.stream,
            flush=True,
        )

    def stop(self) -> None:
        return None


class LiveProgress:
    """A live status line on a terminal (rich), plus a line for each failure."""

    def __init__(self, per_item: float | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.per_item = per_item  # the forecast's seconds for each item
        self.console = Console(stderr=True)
        self.total = 0
        self.done = 0
        self.failed = 0
        self.retries = 0  # of finished items' tasks: the count the summary gives
        self.phases: Mapping[str, int] = {}
        self._began = time.monotonic()
        self.live = Live(console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._line)  # fmt: skip

    def _line(self) -> Any:
        elapsed = time.monotonic() - self._began
        parts = [clock(elapsed), f"{self.done}/{self.total} done"]
        if self.failed:
            parts[-1] += f" ({self.failed} failed)"
        where = phases_text(self.phases or {"queued": self.total - self.done})
        if where:
            parts.append(where)
        if self.retries:
            parts.append(f"retries {self.retries}")
        left = time_left(elapsed, self.done, self.total, self.per_item)
        if left is not None:
            parts.append(f"about {clock(left)} left")
        return " · ".join(parts)

    def start(self, total: int) -> None:
        self.total = total
        self._began = time.monotonic()
        self.live.start()

    def tick(self, phases: Mapping[str, int]) -> None:
        self.phases = dict(phases)

    def item_started(self, recipe: str, item: str) -> None:
        return None

    def item_finished(self, record: ItemRecord) -> None:
        self.done += 1
        self.retries += sum(task.retries for task in record.tasks)
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
        # Failed checks of a task with a pass_rate, and warn checks: said, not failing.
        unmet = sum(not e.passed for t in record.tasks for e in t.expectations)
        notes = (f", {not_run} not run" if not_run else "") + (
            f", {unmet} check{'s' if unmet != 1 else ''} failed: see run.json" if unmet else ""
        )
        wer = f", WER {record.transcriptions[0].wer:.3f}" if _measured(record) else ""
        return f"{where}: ok ({count}{notes}{wer})"
    if record.error:
        return f"{where}: {record.status}: {one_line(record.error)}"
    failed = [t for t in record.tasks if t.status in ("failed", "skipped")]
    if not failed:
        return f"{where}: {record.status}"
    first = failed[0]
    more = f" (and {len(failed) - 1} more: see run.json)" if len(failed) > 1 else ""
    cause = one_line(first.error or "")
    return f"{where}: {record.status}: {first.task} {first.status}: {cause}{more}"


def _measured(record: ItemRecord) -> bool:
    """Whether the item's transcript has a word error rate (its recipe checks it)."""
    return bool(record.transcriptions) and record.transcriptions[0].wer is not None


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


def retries_text(totals: Totals, retries: Mapping[str, int] | None) -> str:
    """``12 (transcriptions 8, polls 4)``: every retry, by kind."""
    if retries is None:
        return str(totals.retries)
    total = sum(retries.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(retries.items()) if n)
    return f"{total} ({kinds})" if kinds else str(total)


def _group_line(totals: Totals) -> list[str]:
    """The groups' own line (tasks ``over:`` several items), when the run had any: a
    group is not an item, so the items' line counts only items."""
    groups = totals.groups
    if not groups:
        return []
    return [
        f"  groups: {groups['ok']} ok, {groups['failed']} failed"
        + (f", {groups['interrupted']} interrupted" if groups["interrupted"] else "")
    ]


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
    failures_shown: bool = False,
    retries: Mapping[str, int] | None = None,
) -> str:
    """The end-of-run summary, as plain text (also what CI logs show).

    ``status_pages`` are the pages of the transcript list that status sweeps read, and
    ``peak_budget_share`` the most of the account's request budget (20,000 per 5
    minutes) they spent in any 5 minutes. ``retries``: every request the run's clients
    sent again, by kind; else the retries its tasks' records count (a merged run)."""
    items = totals.items
    tasks = totals.tasks
    lines = [
        f"Run {outcome} in {wall:.1f} s.",
        f"  items: {items['ok']} ok, {items['failed']} failed"
        + (f", {items['interrupted']} interrupted" if items["interrupted"] else "")
        + (f", {left} not started" if left else ""),
        *_group_line(totals),
        f"  tasks: {tasks['ok']} ok, {tasks['failed']} failed, {tasks['skipped']} skipped"
        + (f", {tasks[NOT_RUN]} not run" if tasks[NOT_RUN] else ""),
        f"  tokens: {totals.input_tokens} in, {totals.output_tokens} out"
        f" · audio: {totals.audio_seconds / 3600:.2f} h · retries: {retries_text(totals, retries)}",
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
    lines += [f"  note: {one_line(note)}" for note in totals.notes]
    if totals.noted > len(totals.notes):
        lines.append(f"  notes: {totals.noted - len(totals.notes)} more in run.json")
    if totals.failures and failures_shown:
        # Each failed item had its line as it finished: not the same block again.
        failed = totals.items["failed"]
        lines.append(
            f"  failures: {failed} item{'s' if failed != 1 else ''}, each in its line above; "
            "every cause is in run.json" + (" and the report" if report else "")
        )
    elif totals.failures:
        lines.append("  failures:")
        lines += [
            f"    {recipe}/{what}: {one_line(error)}" for recipe, what, error in totals.failures
        ]
    lines += _rate_lines(totals)
    if totals.outputs:
        lines.append(f"  outputs: {totals.outputs}/")
    lines += [f"  table: {table}" for table in tables]
    if table_problem:
        lines.append(f"  table not written: {table_problem}")
    if report:
        lines.append(f"  report: {report}")
    lines.append(f"  manifest: {manifest}")
    return "\n".join(lines)


def _rate_lines(totals: Totals) -> list[str]:
    """Each task's pass rate (`pass_rate:`), and the gates that failed, naming the
    checks that brought them down."""
    lines = []
    for gate in totals.rates.gates.values():
        mark = "ok" if gate.ok else "FAILED"
        lines.append(
            f"  pass rate: {gate.recipe}/{gate.task} {gate.passed} of {gate.total} items "
            f"({percent(gate.rate)}), pass_rate {percent(gate.pass_rate)}: {mark}"
        )
    lines += [f"  below pass_rate: {shortfall.words()}" for shortfall in totals.rates.below()]
    warned = [
        c for c in totals.rates.checks.values() if c.severity == "warn" and c.passed < c.total
    ]
    lines += [f"  warning (severity: warn): {check.words()} pass" for check in warned]
    return lines
