"""Each item's transcriptions checked, and engines compared.

A recipe whose ``transcription:`` is a list has the other blocks transcribe the item
beside the primary, each as the primary is (the ledger, the store, single flight: paid
for at most once), at the same time as it. Only the primary's transcript reaches the
tasks and the item's folder; the others are timed, priced and checked. Every block's
checks (its word error rate against a reference, :mod:`runner.transcript.wer`) run on
its transcript; a compared block without checks of its own is measured against the
primary's reference, to compare, and never fails the item. A check that fails, or a
compared transcription that fails, fails the item (exit code 1) and nothing more: its
tasks run, and the other items go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ItemError
from runner.execute.loading import Settled, TranscriptLoader
from runner.execute.transcribe import Transcriber
from runner.items import Item
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import folder_context
from runner.recipe.model import InputKind, Recipe, Transcription, WerCheck
from runner.results.records import ExpectationRecord, ItemRecord, TranscriptionRecord
from runner.transcript.wer import word_errors


@dataclass
class Beside:
    """A compared block's transcription of one item: settled, or failed (its record says)."""

    block: Transcription
    record: TranscriptionRecord
    settled: Settled | None = None


def wanted(recipe: Recipe) -> bool:
    """Whether items of ``recipe`` get transcription records: it checks or compares."""
    return bool(recipe.compared) or any(block.checks for block in recipe.transcriptions)


class Comparison:
    """Makes the compared transcriptions and runs every block's checks."""

    def __init__(self, transcriber: Transcriber, loader: TranscriptLoader) -> None:
        self.transcriber = transcriber
        self.loader = loader

    async def settle(
        self, recipe: Recipe, item: Item, record: ItemRecord, primary: Awaitable[Settled]
    ) -> tuple[Settled, list[Beside]]:
        """The primary's transcript (``primary``) and, meanwhile, the compared blocks'
        (only of audio: a saved transcript or an id has nothing to transcribe again).
        When the primary fails, the others still finish, and the item's record keeps
        them: what they cost was paid all the same."""
        audio = item.kind in (InputKind.FILE, InputKind.URL)
        compared = recipe.compared if audio else ()
        besides = [Beside(block, TranscriptionRecord(block.label, False)) for block in compared]
        running = [asyncio.create_task(self._settle(recipe, item, b)) for b in besides]
        try:
            settled = await primary
        except ItemError as exc:
            await asyncio.gather(*running)
            label = recipe.transcriptions[0].label if recipe.transcriptions else ""
            failed = TranscriptionRecord(label, True, status="failed", error=exc.message)
            record.transcriptions = [failed, *(beside.record for beside in besides)]
            raise
        except BaseException:  # the run stops: so do they (the ledger keeps what was paid)
            for task in running:
                task.cancel()
            # Each is awaited (its CancelledError kept), so none is left unretrieved.
            await asyncio.gather(*running, return_exceptions=True)
            raise
        await asyncio.gather(*running)
        return settled, besides

    async def _settle(self, recipe: Recipe, item: Item, beside: Beside) -> None:
        scratch = ItemRecord(recipe.name, item.name, item.source, item.kind.value, "ok")
        made = beside.record
        try:
            beside.settled = await self.transcriber.settle(
                recipe.transcribed_by(beside.block), item, scratch
            )
        except ItemError as exc:
            made.status, made.error = "failed", exc.message
            return
        made.transcript_id = scratch.transcript_id
        made.seconds = scratch.transcript_seconds
        made.submitted, made.reused = scratch.submitted, scratch.reused

    async def check(
        self,
        recipe: Recipe,
        engine: TemplateEngine,
        item: Item,
        record: ItemRecord,
        text: str,
        besides: Sequence[Beside],
    ) -> None:
        """Every block's checks on its transcript (the primary's is ``text``), into
        ``record.transcriptions``; a failure fails the item, naming the block."""
        if not recipe.transcriptions:
            return
        primary = recipe.transcriptions[0]
        made = TranscriptionRecord(
            primary.label,
            True,
            transcript_id=record.transcript_id,
            speech_model=record.speech_model,
            seconds=record.transcript_seconds,
            submitted=record.submitted,
            reused=record.reused,
            audio_duration=record.audio_duration,
        )
        references = _References(recipe, engine, item)
        await _judge(made, primary.checks, text, references, measure_only=False)
        record.transcriptions = [made]
        for beside in besides:
            record.transcriptions.append(beside.record)
            if beside.settled is None:
                continue
            try:
                obtained = await self.loader.load(beside.settled)
            except ItemError as exc:
                beside.record.status, beside.record.error = "failed", exc.message
                continue
            found = obtained.transcript
            beside.record.speech_model = found.speech_model_used
            duration = found.audio_duration
            beside.record.audio_duration = float(duration) if duration is not None else None
            own = beside.block.checks
            checks = own or primary.checks[:1]
            await _judge(beside.record, checks, found.text, references, measure_only=not own)
        failure = next(filter(None, (made.failure() for made in record.transcriptions)), None)
        if failure is not None:
            record.status = "failed"
            record.error = record.error or failure


async def _judge(
    made: TranscriptionRecord,
    checks: tuple[WerCheck, ...],
    text: str,
    references: _References,
    *,
    measure_only: bool,
) -> None:
    """``checks`` on ``text`` into ``made``; with ``measure_only``, the rate is kept
    and nothing passes or fails (a compared block without checks of its own)."""
    for check in checks:
        reference, problem = await references.of(check)
        rate: float | None = None
        if reference is not None:
            try:
                errors = await asyncio.to_thread(word_errors, reference, text)
            except ValueError as exc:
                problem = f"{references.name(check)}: {exc}"
            else:
                rate = round(errors.rate, 3)  # as every display shows it
                made.wer = rate if made.wer is None else made.wer
                if errors.rate > check.max:
                    problem = f"{errors.describe()}, above {check.max:g}"
        if measure_only:
            continue
        made.expectations.append(
            ExpectationRecord(
                expect=check.describe(),
                passed=problem is None,
                message=problem or "",
                line=check.line,
                score=rate,
            )
        )
        if problem is not None:
            made.status = "failed"


class _References:
    """The reference texts of one item, each read once."""

    def __init__(self, recipe: Recipe, engine: TemplateEngine, item: Item) -> None:
        self.recipe, self.engine, self.item = recipe, engine, item
        self._read: dict[Path, tuple[str | None, str | None]] = {}

    def name(self, check: WerCheck) -> str:
        if check.reference_column is not None:
            return f"the reference in column {check.reference_column!r}"
        return "the reference file"

    async def of(self, check: WerCheck) -> tuple[str | None, str | None]:
        """The reference's text, or why there is none."""
        column = check.reference_column
        if column is not None:
            value = self.item.vars.get(column)
            if value is None or isinstance(value, Mapping | list | tuple):
                return None, f"item {self.item.name!r} has no text in column {column!r}"
            return str(value), None
        assert check.reference_file is not None  # a check names a file or a column
        try:
            context = folder_context(self.recipe, self.item.view(self.recipe))
            written = self.engine.render(check.reference_file, context).strip()
        except ItemError as exc:
            return None, f"the reference's path: {exc.message}"
        path = self.recipe.base_dir / written
        if path not in self._read:
            self._read[path] = await asyncio.to_thread(_read_text, path, written)
        return self._read[path]


def _read_text(path: Path, written: str) -> tuple[str | None, str | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except FileNotFoundError:
        return None, f"the reference file {written} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read the reference file {written}: {exc}"
