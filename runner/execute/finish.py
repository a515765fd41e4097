"""Finishing a task: keep the raw reply, process it, write the result, check expectations.

:func:`process_reply` is the one definition of "what a reply becomes"; ``run`` writes
it and ``plan`` uses it to show dependent tasks the result a cached reply will give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.api.types import Completion
from runner.diagnostics import display_resolved
from runner.errors import PostProcessFailed
from runner.execute.expectations import expect
from runner.execute.postprocess import Processed, apply
from runner.prompt.views import TaskResultView, TranscriptView
from runner.recipe.model import Task
from runner.results.outputs import contained, write_atomic
from runner.results.records import TaskRecord
from runner.transcript.quotes import MIN_QUOTE_CHARS, NEAR, REWORDED, VERBATIM, match_quotes
from runner.transcript.semantic import SemanticUnavailable, match_semantic

QUOTES_STEP = "find quotes in the transcript's words"


def process_reply(task: Task, reply: str, view: TranscriptView) -> Processed:
    """The result of ``reply``: quotes found in the transcript's words, or the task's
    post-processing steps applied. Raises :class:`PostProcessFailed`."""
    if task.quotes is None:
        return apply(reply, task.post_process, task.json_schema)
    if not view.words:
        raise PostProcessFailed("the transcript has no words to find quotes in")
    options = task.quotes
    if options.match == "semantic":
        try:
            quotes = match_semantic(
                reply,
                view.sentences,
                view.words,
                count=options.count,
                window=options.window,
                overlap=options.overlap,
                model=options.model,
            )
        except SemanticUnavailable as problem:
            raise PostProcessFailed(str(problem)) from None
    else:
        quotes = match_quotes(reply, view.words, count=options.count)
    if not quotes:
        raise PostProcessFailed(
            "the reply holds no quotes to find in the transcript (quotes are lines, or text "
            f"in quotation marks, of at least {MIN_QUOTE_CHARS} characters); ask for them "
            "one per line"
        )
    data: Any = [q.as_json() for q in quotes]
    return Processed(json.dumps(data, indent=2, ensure_ascii=False), data, (QUOTES_STEP,), True)


def quotes_shortfall(task: Task, data: Any) -> str | None:
    """Why a quotes task fails although its output is written: fewer than ``count``
    quotes are the transcript's own words (or reworded ones too, when the recipe
    allows paraphrases). The first quote that does not count is named."""
    if task.quotes is None or not isinstance(data, list):
        return None
    counted = (VERBATIM, NEAR, REWORDED) if task.quotes.allow_paraphrases else (VERBATIM, NEAR)
    good = [q for q in data if q.get("verdict") in counted]
    if len(good) >= task.quotes.count:
        return None
    wanted = (
        "verbatim, near-verbatim or paraphrased"
        if task.quotes.allow_paraphrases
        else ("verbatim or near-verbatim")
    )
    bad = next((q for q in data if q.get("verdict") not in counted), None)
    example = f"; {bad['quote']!r} is {bad['verdict']}" if bad is not None else ""
    return (
        f"{len(good)} of the {task.quotes.count} quotes asked for are {wanted} quotes of the "
        f"transcript{example} (see the verdicts in {Path(task.output).name})"
    )


def unusable(task: Task, completion: Completion) -> str | None:
    """Why a reply cannot stand as the task's result, before anything is written: an
    empty reply, or a structured reply the model was cut off in (``max_tokens``)."""
    if not completion.content.strip() and not completion.tool_calls:
        return "the model returned an empty reply"
    if completion.finish_reason == "length" and task.structured:
        limit = f" ({task.max_tokens})" if task.max_tokens else ""
        return (
            f"the reply was cut off at max_tokens{limit} before it was complete; raise "
            "max_tokens for this task"
        )
    return None


def result_view(task: Task, processed: Processed) -> TaskResultView:
    """``tasks.<name>`` as the tasks that need this one see it."""
    return TaskResultView.build(
        task.name, processed.text, processed.data, structured=task.structured
    )


# Replies up to this size, with no quotes to align, are processed on the event loop:
# stripping or repairing a few kB of JSON takes microseconds, less than the handoff
# to a thread and back.
LIGHT_REPLY_CHARS = 16_000


def light_processing(task: Task, reply: str) -> bool:
    """Whether processing ``reply`` is too quick to be worth a thread."""
    return task.quotes is None and len(reply) <= LIGHT_REPLY_CHARS


def processed_or_failure(
    task: Task, reply: str, view: TranscriptView
) -> Processed | PostProcessFailed:
    """What the reply becomes, or why it cannot; nothing is written yet, so a clean
    result can be cached before any output file (a full disk must not lose a paid reply)."""
    try:
        return process_reply(task, reply, view)
    except PostProcessFailed as failure:
        return failure


def finish(
    task: Task,
    folder: Path,
    view: TranscriptView,
    reply: str,
    outcome: Processed | PostProcessFailed,
    record: TaskRecord,
) -> TaskResultView | None:
    """Write the task's files and fill ``record``; the result for dependents, or None
    when the reply could not be processed (the raw reply is kept to read)."""
    output = contained(folder, task.output)
    # The raw reply's path (beside the output) only for a task that keeps it, or says it.
    raw_path = (
        contained(folder, task.raw_output)
        if task.keeps_raw_reply or isinstance(outcome, PostProcessFailed)
        else None
    )
    if task.keeps_raw_reply and raw_path is not None:
        write_atomic(raw_path, reply)
        record.raw_output = display_resolved(raw_path)
    if isinstance(outcome, PostProcessFailed):
        record.fail(f"{outcome} (the raw reply is in {raw_path.name if raw_path else ''})")
        return None
    processed = outcome
    record.post_process = list(processed.steps)
    text = processed.text
    write_atomic(output, text if text.endswith("\n") else text + "\n")
    record.output = display_resolved(output)
    shortfall = quotes_shortfall(task, processed.data)
    if shortfall is not None:
        record.fail(shortfall)
    if task.expectations:
        expect(task, record, text, processed.data, view.text)
    # A failed expectation fails the task but its output stands, so the tasks that
    # need it still run.
    return result_view(task, processed)
