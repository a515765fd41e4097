"""Graded checks (``judge``, ``similar_to``, ``grounded``): run after a task's result is
written, each with a score and a reason, then the task settled with all its checks.

A judge is asked through the reply cache like a task (:class:`Asker`): its reply is
kept the moment it arrives, before anything is done with it, so a rerun sends
nothing; a reply that is not a verdict is forgotten, to be asked again. Its calls,
tokens and cost go into the check's record. ``similar_to`` and ``grounded`` run on
this machine (the packaged embedding model), on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ItemError, TemplateProblem
from runner.execute.ask import Asker, reply_text
from runner.execute.expectations import settle
from runner.prompt.judging import Verdict, judge_messages, judge_payload, read_verdict
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TranscriptView
from runner.recipe.model import Expectation, Judge, Task
from runner.recipe.references import read_reference
from runner.results.records import ExpectationRecord, TaskRecord
from runner.store import judge_key
from runner.transcript.embedding import EmbeddingUnavailable, similarity
from runner.transcript.grounding import claims_of, ground, quoted_spans


@dataclass(frozen=True)
class CheckInput:
    """What a task's checks read for one item: its result and where to render."""

    text: str
    data: Any
    view: TranscriptView
    engine: TemplateEngine
    context: Mapping[str, Any]  # item and vars, as output names see them
    base: Path  # the recipe's folder: reference files are found under it
    label: str  # recipe/item/task, for the cache


class Grader:
    """Runs a task's graded checks and settles the task."""

    def __init__(self, asker: Asker) -> None:
        self.asker = asker

    async def grade(self, task: Task, record: TaskRecord, given: CheckInput) -> None:
        """Every check of ``task`` in recipe order (the others were checked already,
        in ``record.expectations``), then the task settled."""
        done = iter(record.expectations)
        records = []
        for expectation in task.expectations:
            if expectation.graded:
                records.append(await self._graded(expectation, given))
            else:
                records.append(next(done))
        record.expectations = records
        settle(task, record)

    async def _graded(self, expectation: Expectation, given: CheckInput) -> ExpectationRecord:
        record = ExpectationRecord(
            expect=expectation.describe(),
            passed=False,
            message="",
            line=expectation.line,
            kind=expectation.kind,
            severity=expectation.severity,
        )
        try:
            if expectation.kind == "judge":
                await self._judge(expectation, given, record)
            elif expectation.kind == "similar_to":
                await self._similar(expectation, given, record)
            else:
                await self._grounded(expectation, given, record)
        except TemplateProblem as problem:
            record.reason = f"the check's text could not be rendered: {problem.message}"
        except (EmbeddingUnavailable, ValueError) as problem:
            record.reason = str(problem)
        if not record.passed and not record.reason:
            record.reason = "failed (the judge gave no reason)"
        record.message = "" if record.passed else record.reason
        return record

    async def _text(self, expectation: Expectation, given: CheckInput) -> str:
        """The check's text for this item: rendered, or read from the file it names."""
        assert expectation.text is not None
        rendered = given.engine.render(expectation.text, given.context)
        if not expectation.from_file:
            return rendered
        return await asyncio.to_thread(read_reference, given.base, rendered)

    async def _similar(
        self, expectation: Expectation, given: CheckInput, record: ExpectationRecord
    ) -> None:
        reference = await self._text(expectation, given)
        score = await asyncio.to_thread(similarity, given.text, reference)
        least = expectation.min_similarity
        record.score = round(score, 4)
        record.passed = score >= least
        record.reason = f"similarity {score:.3f} {'≥' if record.passed else '<'} {least:g}"

    async def _grounded(
        self, expectation: Expectation, given: CheckInput, record: ExpectationRecord
    ) -> None:
        what = expectation.what
        spans = quoted_spans(given.text, given.data) if what == "quotes" else claims_of(given.text)
        if not spans:
            record.passed = True
            record.reason = f"no {what} to check"
            return
        view = given.view
        found = await asyncio.to_thread(ground, spans, view.words, view.sentences)
        missing = [g for g in found if not g.supported]
        supported = len(found) - len(missing)
        record.details = [g.as_json() for g in found]
        record.score = round(supported / len(found), 4)
        record.passed = len(missing) <= expectation.max_unsupported
        record.reason = f"{supported} of {len(found)} {what} supported by the transcript"
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            record.reason += f"; not found: {missing[0].text!r}{more}"

    async def _judge(
        self, expectation: Expectation, given: CheckInput, record: ExpectationRecord
    ) -> None:
        judge = expectation.judge
        assert judge is not None
        rubric = await self._text(expectation, given)
        asked = [
            self._verdict(
                judge,
                judge_messages(rubric, given.text, given.view.text, n=n, of=judge.repeat),
                f"{given.label}/judge",
                record,
            )
            for n in range(1, judge.repeat + 1)
        ]
        verdicts = await asyncio.gather(*asked)
        _sum_up(judge, verdicts, record)

    async def _verdict(
        self,
        judge: Judge,
        messages: list[dict[str, str]],
        label: str,
        record: ExpectationRecord,
    ) -> Verdict | str:
        """One verdict (or why there is none), its call counted in ``record``."""
        payload = judge_payload(judge, messages)
        key = judge_key(payload)
        call = TaskRecord(task=label, status="ok")  # the Asker's notes: asked, or cached
        try:
            completion = await self.asker.reply_to(payload, key, label, call)
            verdict = read_verdict(reply_text(completion))
            # Kept only when it is a verdict: a broken reply is asked again next time.
            await self.asker.keep_or_forget(call, clean=isinstance(verdict, Verdict))
        except ItemError as exc:
            return f"the judge could not be asked: {exc.message}"
        finally:
            await self.asker.release(key)
        record.model_used = completion.model or judge.model
        record.provider = judge.provider.name if judge.provider is not None else None
        if call.asked:
            record.asked += 1
            usage = completion.usage
            record.input_tokens = (record.input_tokens or 0) + (usage.input_tokens or 0)
            record.output_tokens = (record.output_tokens or 0) + (usage.output_tokens or 0)
        elif call.cached:
            record.cached += 1
        return verdict


def _sum_up(judge: Judge, verdicts: Sequence[Verdict | str], record: ExpectationRecord) -> None:
    """The check passes when at least ``min_pass`` verdicts pass (and reach
    ``min_score``); its score is their mean, its reason the deciding one's."""
    passes = [
        isinstance(v, Verdict)
        and v.passed
        and (judge.min_score is None or v.score >= judge.min_score)
        for v in verdicts
    ]
    scores = [v.score for v in verdicts if isinstance(v, Verdict)]
    record.passed = sum(passes) >= judge.min_pass
    record.score = round(sum(scores) / len(scores), 4) if scores else None
    record.details = [
        {"pass": ok, "score": v.score, "reason": v.reason}
        if isinstance(v, Verdict)
        else {"pass": False, "score": None, "reason": v}
        for v, ok in zip(verdicts, passes, strict=True)
    ]
    deciding = next(
        (d for d, ok in zip(record.details, passes, strict=True) if ok == record.passed),
        record.details[0],
    )
    reason = str(deciding["reason"])
    floor = judge.min_score
    if (
        not record.passed
        and floor is not None
        and any(isinstance(v, Verdict) and v.passed and v.score < floor for v in verdicts)
    ):
        reason = f"score below min_score {floor:g}: {reason}"
    if judge.repeat > 1:
        reason = (
            f"{sum(passes)} of {judge.repeat} verdicts pass (min_pass {judge.min_pass}): {reason}"
        )
    record.reason = reason
