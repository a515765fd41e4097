"""Asking a task in parts (``long: map-reduce``): each part's request through the
reply cache, like any request (cached per part, so a rerun sends nothing), then the
request that combines them.

What the parts are is :mod:`runner.prompt.parts`'s; this module only asks them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from runner.errors import PostProcessFailed
from runner.execute.ask import Asker, reply_text
from runner.execute.finish import unusable
from runner.prompt.parts import MapPart, PartView
from runner.recipe.model import Task
from runner.results.records import TaskRecord


@dataclass
class PartsAsked:
    """The parts' replies as the reduce prompt sees them, and what they cost."""

    views: list[PartView]
    asked: int  # parts sent this run (the rest came from the cache)
    input_tokens: int
    output_tokens: int

    def add_to(self, record: TaskRecord) -> None:
        """The parts join the task's record: their count, tokens and whether sent."""
        record.parts = len(self.views)
        record.asked = record.asked or self.asked > 0
        record.cached = record.cached and self.asked == 0
        record.input_tokens = (record.input_tokens or 0) + self.input_tokens
        record.output_tokens = (record.output_tokens or 0) + self.output_tokens


async def ask_parts(asker: Asker, task: Task, parts: Sequence[MapPart], label: str) -> PartsAsked:
    """Each part's reply, in order. Raises :class:`~runner.errors.ItemError` (the
    first part that failed); the others' replies are still cached as they arrive."""

    async def one(index: int, part: MapPart) -> tuple[TaskRecord, str]:
        mine = TaskRecord(task=task.name, status="ok")
        try:
            completion = await asker.reply(task, part.payload, f"{label} part {index}", mine)
        finally:
            if mine.cache_key:
                await asker.release(mine.cache_key)
        mine.input_tokens = completion.usage.input_tokens
        mine.output_tokens = completion.usage.output_tokens
        reason = unusable(task, completion)
        if reason is not None:
            raise PostProcessFailed(f"part {index} of {len(parts)}: {reason}")
        return mine, reply_text(completion)

    results = await asyncio.gather(
        *(one(i, part) for i, part in enumerate(parts, 1)), return_exceptions=True
    )
    replies: list[tuple[TaskRecord, str]] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        replies.append(result)
    return PartsAsked(
        views=[
            part.view(i, text)
            for i, (part, (_, text)) in enumerate(zip(parts, replies, strict=True), 1)
        ],
        asked=sum(1 for mine, _ in replies if mine.asked),
        input_tokens=sum(mine.input_tokens or 0 for mine, _ in replies),
        output_tokens=sum(mine.output_tokens or 0 for mine, _ in replies),
    )
