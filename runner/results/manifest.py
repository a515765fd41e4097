"""The run manifest, ``run.json``: one record per item and task, streamed to disk.

A run over 10,000 items must not hold every result in memory, so each item's
record is appended to ``run.json.partial`` the moment the item finishes; the
closing summary is written and the file renamed to ``run.json`` when the run
ends, including on Ctrl-C or ``--timeout``. A crash leaves the ``.partial`` file,
whose records up to the crash are intact.

Secrets never reach it: records are built from results, never from requests.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from runner import __version__

MAX_FAILURES_KEPT = 50  # failures repeated in the end-of-run summary


@dataclass
class ExpectationRecord:
    expect: str  # what was checked, e.g. "contains 'Maine'"
    passed: bool
    message: str  # why it failed ("" when it passed)
    line: int  # the expectation's line in the recipe


@dataclass
class TaskRecord:
    task: str
    status: str  # ok, failed, skipped
    error: str | None = None
    line: int = 0  # the task's line in the recipe, for annotations
    api: str = "gateway"
    model_requested: str | None = None
    model_used: str | None = None
    fallback_used: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_seconds: float | None = None
    retries: int = 0
    request_id: str | None = None
    asked: bool = False  # a request was sent to the API
    cached: bool = False  # the reply came from the state store's cache
    cache_key: str | None = None
    output: str | None = None
    raw_output: str | None = None
    post_process: list[str] = field(default_factory=list)
    expectations: list[ExpectationRecord] = field(default_factory=list)

    def fail(self, message: str) -> TaskRecord:
        """Mark the task failed with ``message``; returns the record, for ``return``."""
        self.status = "failed"
        self.error = message
        return self


@dataclass
class ItemRecord:
    recipe: str
    item: str
    source: str
    kind: str
    status: str  # ok, failed, interrupted
    recipe_file: str = ""  # the recipe's path as given, for annotations
    error: str | None = None
    transcript_id: str | None = None
    audio_duration: float | None = None
    polls: int = 0
    transcript_seconds: float | None = None
    submitted: bool = False
    reused: bool = False  # the transcript came from the ledger of an earlier run
    folder: str | None = None
    tasks: list[TaskRecord] = field(default_factory=list)


@dataclass
class Totals:
    items: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    audio_seconds: float = 0.0
    polls: int = 0
    transcripts_polled: int = 0
    retries: int = 0
    submitted: int = 0
    reused: int = 0
    cached: int = 0
    asked: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # recipe, what, error

    def add(self, record: ItemRecord) -> None:
        self.items[record.status] += 1
        if record.error:
            self._fail(record.recipe, record.item, record.error)
        if record.polls:
            self.polls += record.polls
            self.transcripts_polled += 1
        self.audio_seconds += record.audio_duration or 0
        self.submitted += record.submitted
        self.reused += record.reused
        for task in record.tasks:
            self.cached += task.cached
            self.asked += task.asked
            self.tasks[task.status] += 1
            if task.asked:  # cached replies were paid for by an earlier run
                self.input_tokens += task.input_tokens or 0
                self.output_tokens += task.output_tokens or 0
            self.retries += task.retries
            if task.status == "failed" and task.error:
                self._fail(record.recipe, f"{record.item} · {task.task}", task.error)

    def counts(self) -> dict[str, Any]:
        """The summary's counted fields (a run's manifest and a merged one share them)."""
        return {
            "items": dict(self.items),
            "tasks": dict(self.tasks),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "audio_hours": round(self.audio_seconds / 3600, 4),
            "retries": self.retries,
            "transcriptions_submitted": self.submitted,
            "transcriptions_reused": self.reused,
            "llm_calls": self.asked,
            "llm_replies_cached": self.cached,
            "polls_per_transcript": round(self.polls / self.transcripts_polled, 2)
            if self.transcripts_polled
            else None,
        }

    def _fail(self, recipe: str, what: str, error: str) -> None:
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append((recipe, what, error))


class ManifestWriter:
    """Appends item records as items finish; :meth:`close` writes the summary."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.totals = Totals()
        self._count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: IO[str] = self.partial.open("w", encoding="utf-8")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        head = {"tool": "transcript-runner", "version": __version__, "started": started, **header}
        body = json.dumps(head, indent=2, ensure_ascii=False)
        # Open the object, leave it unterminated, and start the items array.
        self._stream.write(body[:-1].rstrip() + ',\n  "items": [\n')
        self._stream.flush()

    def add(self, record: ItemRecord) -> None:
        self.totals.add(record)
        prefix = ",\n" if self._count else ""
        self._stream.write(prefix + _indent(json.dumps(asdict(record), ensure_ascii=False)))
        self._stream.flush()
        self._count += 1

    def close(self, outcome: str, wall_seconds: float) -> Path:
        totals = self.totals
        summary = {
            "outcome": outcome,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(wall_seconds, 3),
            **totals.counts(),
        }
        self._stream.write('\n  ],\n  "summary": ' + _indent(json.dumps(summary), first=False))
        self._stream.write("\n}\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        os.replace(self.partial, self.path)
        return self.path


def _indent(text: str, *, first: bool = True) -> str:
    return ("    " if first else "") + text
