"""The Markdown job summary (``$GITHUB_STEP_SUMMARY``): totals per recipe, then failures."""

from collections.abc import Iterator, Sequence

from runner.recipe.prices import format_usd
from runner.results.manifest import (
    Manifest,
    failed_expectations,
    item_records,
    ordered_by_recipe,
    run_failed,
    warned_expectations,
)
from runner.results.rates import CheckRates, percent
from runner.results.records import ItemRecord, TaskRecord, Totals, TranscriptionRecord, totals_of

MAX_FAILURES_LISTED = 50  # bullets in the step summary before "…and N more"
TEXT_LIMIT = 500  # characters of an error quoted in the step summary


# --- GitHub step summary -------------------------------------------------------------

_COLUMNS = (
    "recipe",
    "items ok / failed",
    "tasks ok / failed / skipped",
    "tokens in / out",
    "transcriptions submitted / reused",
    "LLM calls / cached",
    "cost",
)


def step_summary(manifest: Manifest) -> str:
    """GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY``: the outcome, a table row
    per recipe, and the failures (at most 50), so a reviewer sees what broke without
    opening the job log."""
    records = item_records(manifest)
    groups = ordered_by_recipe(manifest, records)
    lines = [_heading(manifest), "", _overview(manifest, records, len(groups)), ""]
    lines += _table(groups)
    lines += _transcription_lines(groups)
    rates = totals_of(records).rates
    lines += _rates(rates)
    failures = [f"pass rate: {_inline(s.words())}" for s in rates.below()]
    failures += _failure_lines(groups)
    if failures:
        lines += ["", "#### Failures", ""]
        lines += [f"- {text}" for text in failures[:MAX_FAILURES_LISTED]]
        if len(failures) > MAX_FAILURES_LISTED:
            lines.append(f"- …and {len(failures) - MAX_FAILURES_LISTED} more (see run.json)")
    warnings = list(_warning_lines(groups))
    if warnings:
        lines += ["", "#### Warnings (`severity: warn`)", ""]
        lines += [f"- {text}" for text in warnings[:MAX_FAILURES_LISTED]]
    return "\n".join(lines) + "\n"


def _rates(rates: CheckRates) -> list[str]:
    """Each check's pass rate over the items, its task's ``pass_rate`` beside it."""
    if not rates.checks:
        return []
    lines = ["", "#### Checks", "", "| recipe | task | check | passed | rate | pass_rate |"]
    lines.append("|---|---|---|---|---|---|")
    for check in rates.checks.values():
        gate = rates.gates.get((check.recipe, check.task))
        wanted = "—"
        if gate is not None:
            wanted = f"{percent(gate.pass_rate)} {'✅' if gate.ok else '❌'}"
        warn = " (warn)" if check.severity == "warn" else ""
        lines.append(
            f"| {_cell(check.recipe)} | {_cell(check.task)} | `{_code(check.check)}`{warn} | "
            f"{check.passed} / {check.total} | {percent(check.rate)} | {wanted} |"
        )
    return lines


def _warning_lines(groups: Sequence[tuple[str, list[ItemRecord]]]) -> Iterator[str]:
    for recipe, records in groups:
        for record in records:
            for task in record.tasks:
                for check in warned_expectations(task):
                    where = f"**{_inline(recipe)}** · {_inline(record.item)} · {_inline(task.task)}"
                    reason = _inline(check.reason or check.message)
                    yield f"{where}: `{_code(check.expect)}`: {reason}"


def _heading(manifest: Manifest) -> str:
    outcome = str(manifest["summary"].get("outcome", "unknown"))
    if run_failed(manifest):
        state = "completed with failures" if outcome == "completed" else outcome
        return f"### ❌ transcript-runner: run {_inline(state)}"
    return "### ✅ transcript-runner: run completed"


def _overview(manifest: Manifest, records: Sequence[ItemRecord], recipes: int) -> str:
    summary = manifest["summary"]
    parts = [
        f"{_count(len(records), 'item')} in {_count(recipes, 'recipe')}",
        f"{float(summary.get('wall_seconds') or 0):.1f} s",
        f"{float(summary.get('audio_hours') or 0):.2f} h of audio",
    ]
    shards = manifest.get("shards")
    if isinstance(shards, int) and shards > 1:
        parts.append(f"{shards} shards")
    return " · ".join(parts)


def _table(groups: Sequence[tuple[str, list[ItemRecord]]]) -> list[str]:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    everything = Totals()
    for recipe, records in groups:
        totals = totals_of(records)
        lines.append(_row(recipe, totals))
        for record in records:
            everything.add(record)
    if len(groups) > 1:
        lines.append(_row("**total**", everything, escape=False))
    return lines


def _row(recipe: str, totals: Totals, *, escape: bool = True) -> str:
    items, tasks = totals.items, totals.tasks
    not_ok = items["failed"] + items["interrupted"]
    cells = [
        _cell(recipe) if escape else recipe,
        f"{items['ok']:,} / {not_ok:,}",
        f"{tasks['ok']:,} / {tasks['failed']:,} / {tasks['skipped']:,}",
        f"{totals.input_tokens:,} / {totals.output_tokens:,}",
        f"{totals.submitted:,} / {totals.reused:,}",
        f"{totals.asked:,} / {totals.cached:,}",
        _cost(totals),
    ]
    return "| " + " | ".join(cells) + " |"


def _transcription_lines(groups: Sequence[tuple[str, list[ItemRecord]]]) -> list[str]:
    """Each item's word error rate, time and cost by engine, when its recipe checks
    or compares its transcripts (the primary first, marked)."""
    rows = [
        f"| {_cell(recipe)} | {_cell(record.item)} | {_cell(made.engine)}"
        f"{' (primary)' if made.primary else ''} | {_wer(made.wer)} | {_seconds(made.seconds)}"
        f" | {_usd(made.cost_usd, made.submitted)} | {_checks(made)} |"
        for recipe, records in groups
        for record in records
        for made in record.transcriptions
    ]
    if not rows:
        return []
    head = "| recipe | item | engine | WER | time | cost | checks |"
    return ["", "#### Transcriptions", "", head, "|" + "---|" * 7, *rows]


def _wer(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.3f}"


def _seconds(value: float | None) -> str:
    return "reused" if value is None else f"{value:.1f} s"


def _usd(cost: float | None, submitted: bool) -> str:
    if cost is None:
        return "unknown" if submitted else "–"
    return format_usd(cost)


def _checks(made: TranscriptionRecord) -> str:
    if made.status == "failed" and not made.expectations:
        return f"❌ {_cell(made.error or 'failed')}"
    marks = [f"{'✅' if e.passed else '❌'} {_cell(e.expect)}" for e in made.expectations]
    return ", ".join(marks) or "–"


def _cost(totals: Totals) -> str:
    """The known cost; "unknown" or "≥ $X" when a model has no price, never $0.00."""
    if not totals.unpriced:
        return format_usd(totals.cost)
    return f"≥ {format_usd(totals.cost)}" if totals.cost else "unknown"


def _failure_lines(groups: Sequence[tuple[str, list[ItemRecord]]]) -> Iterator[str]:
    for recipe, records in groups:
        for record in records:
            where = f"**{_inline(recipe)}** · {_inline(record.item)}"
            if record.error:
                yield f"{where}: {record.status}: {_inline(record.error)}"
            for task in record.tasks:
                yield from _task_failure_lines(record, task, f"{where} · {_inline(task.task)}")


def _task_failure_lines(record: ItemRecord, task: TaskRecord, where: str) -> Iterator[str]:
    failed = failed_expectations(task)
    if task.status == "failed" and task.error and not failed:
        yield f"{where}: {_inline(task.error)}"
    for expectation in failed:
        place = f" ({_inline(record.recipe_file)}:{expectation.line})" if expectation.line else ""
        reason = expectation.message or "failed"
        yield f"{where}: expectation `{_code(expectation.expect)}` failed: {_inline(reason)}{place}"


def _inline(text: str) -> str:
    """Text that stays on its Markdown line: line breaks folded, HTML not interpreted,
    long API errors shortened."""
    flat = " ".join(text.split())
    if len(flat) > TEXT_LIMIT:
        flat = flat[: TEXT_LIMIT - 1] + "…"
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """Text inside a table cell: a ``|`` would start a new cell."""
    return _inline(text).replace("|", "\\|")


def _code(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"
