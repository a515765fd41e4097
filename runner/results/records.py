"""The records of a run: what run.json holds of each item, task, transcription and
check, and the totals counted from them.

The run builds them as items finish (:class:`runner.results.recorder.Recorder`), the
manifest writes and reads them (:mod:`runner.results.manifest`), and every report
counts them the same way: :func:`totals_of`, as the run counted.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.results.rates import CheckRates

MAX_FAILURES_KEPT = 50  # failures repeated in the end-of-run summary


@dataclass
class ExpectationRecord:
    """One check of one task of one item: the shape every check has in run.json (and
    what the reports and a checks matrix read), graded or not. docs/checks.md."""

    expect: str  # what was checked, the same for every item, e.g. "contains 'Maine'"
    passed: bool
    message: str  # why it failed ("" when it passed)
    line: int  # the expectation's line in the recipe
    kind: str = ""  # contains, judge, similar_to, grounded, ...
    severity: str = "error"  # warn: a failure is shown, never failing the item
    score: float | None = None  # graded checks: the judge's score, a similarity, a share
    reason: str = ""  # why it passed or failed, in words (a judge's own reason)
    # What a graded check found: a judge's verdicts, grounded's spans with their times.
    details: list[dict[str, Any]] = field(default_factory=list)
    # A judge's calls, counted as a task's are: sent this run, or from the cache; the
    # tokens and cost are those of the calls sent (cached ones were paid before).
    model_used: str | None = None
    provider: str | None = None
    asked: int = 0
    cached: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    @property
    def failing(self) -> bool:
        """A failure that counts against its item (not a `severity: warn` check's)."""
        return not self.passed and self.severity != "warn"


@dataclass
class TranscriptionRecord:
    """One block of a recipe's ``transcription:`` list for one item (the primary, whose
    transcript the tasks read, first): how it went, what it took, what it cost, and its
    checks. Present when the recipe checks its transcripts or compares engines."""

    engine: str  # the block's label: "assemblyai", "faster-whisper", ...
    primary: bool
    status: str = "ok"  # ok, failed (its transcription, or one of its checks)
    error: str | None = None
    transcript_id: str | None = None
    speech_model: str | None = None
    seconds: float | None = None  # waited for (AssemblyAI) or decoding (here); None: reused
    submitted: bool = False
    reused: bool = False
    audio_duration: float | None = None
    cost_usd: float | None = None  # what this run paid for it; None: paid, price unknown
    wer: float | None = None  # against the reference, normalised (runner.transcript.wer)
    expectations: list[ExpectationRecord] = field(default_factory=list)

    def failure(self) -> str | None:
        """Why it failed, as its item's error says it; None when it did not."""
        if self.status != "failed":
            return None
        broken = [e for e in self.expectations if not e.passed]
        if broken:
            first = broken[0]
            return f"transcription check failed: {self.engine}: {first.expect}: {first.message}"
        return f"transcription by {self.engine} failed: {self.error}"


# A task that could not be asked because no LLM is configured (a first run with no key):
# shown, and counted apart, but not a failure.
NOT_RUN = "not run"
MAX_NOTES = 5  # notes the summary lists; run.json keeps every one


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
    # The task's whole time, seconds: asking (every retry and fallback), processing and
    # writing; latency_seconds is the answered request's alone.
    seconds: float | None = None
    # The Gateway's status fields of the answer (its HTTP status, the LLM provider's).
    http_status_code: int | None = None
    llm_status_code: int | None = None
    asked: bool = False  # a request was sent to the API
    cached: bool = False  # the reply came from the state store's cache
    cache_key: str | None = None
    output: str | None = None
    raw_output: str | None = None
    post_process: list[str] = field(default_factory=list)
    expectations: list[ExpectationRecord] = field(default_factory=list)
    # The functions the model called beside its text (a reply of calls alone is the
    # output itself): kept here, so neither half of such a reply is dropped.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # An export task's text: "assemblyai" (its subtitle endpoint) or "built" (here).
    export_source: str | None = None
    # What the user should know of a task that still succeeded (a subtitle download
    # that failed, so the subtitles were built here).
    note: str | None = None
    # The OpenAI-compatible server (`providers:` name) that answered; None: AssemblyAI.
    provider: str | None = None
    # What this call cost, from the price table: 0 when nothing was paid this run
    # (cached, an export); None when it was paid and its price is unknown.
    cost_usd: float | None = None
    # `long: map-reduce` or a group too large for one request: how many parts were
    # asked before the request combining them (None: read whole).
    parts: int | None = None
    # The task's `pass_rate:`: a failed check does not fail it (nor the run, unless
    # fewer items than this share pass the check); None: every item must pass.
    pass_rate: float | None = None

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
    row: str | None = None  # a list file's row: "lists/calls.csv:4", for annotations
    error: str | None = None
    transcript_id: str | None = None
    audio_duration: float | None = None
    polls: int = 0
    transcript_seconds: float | None = None
    submitted: bool = False
    reused: bool = False  # the transcript came from the ledger of an earlier run
    speech_model: str | None = None  # the speech model that transcribed it
    # What this run paid to transcribe it (0 when it submitted nothing); None when
    # it submitted the job and the speech model's price is unknown.
    transcription_cost_usd: float | None = None
    folder: str | None = None
    tasks: list[TaskRecord] = field(default_factory=list)
    # Each block of `transcription:` (the primary first), when the recipe checks its
    # transcripts or compares engines; empty otherwise.
    transcriptions: list[TranscriptionRecord] = field(default_factory=list)


GROUP_KIND = "group"  # the kind of a record that is a group of items (`over:`), not an item


@dataclass
class Totals:
    items: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)  # records of groups, by status
    tasks: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    audio_seconds: float = 0.0
    polls: int = 0
    transcripts_waited: int = 0
    retries: int = 0
    submitted: int = 0
    reused: int = 0
    cached: int = 0
    asked: int = 0
    transcription_cost: float = 0.0  # USD, the known part
    llm_cost: float = 0.0  # USD, the known part
    unpriced: set[str] = field(default_factory=set)  # models paid for without a price
    rates: CheckRates = field(default_factory=CheckRates)  # each check's pass rate
    not_run_reason: str | None = None  # why tasks were not run (said once in the summary)
    # What succeeded another way than asked (a subtitle download built here instead):
    # the first few, said in the summary; ``noted`` counts them all.
    notes: list[str] = field(default_factory=list)
    noted: int = 0
    outputs: str | None = None  # the folder that holds every item's folder
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # recipe, what, error

    @property
    def cost(self) -> float:
        """What the run is known to have cost, USD (all of it when ``unpriced`` is empty)."""
        return self.transcription_cost + self.llm_cost

    def add(self, record: ItemRecord) -> None:
        (self.groups if record.kind == GROUP_KIND else self.items)[record.status] += 1
        if record.folder:
            self.outputs = (
                record.folder
                if self.outputs is None
                else os.path.commonpath([self.outputs, record.folder]) or "."
            )
        # Interrupted items are counted, not listed: a Ctrl-C would list them all.
        if record.error and record.status != "interrupted":
            self._fail(record.recipe, record.item, record.error)
        if record.polls or record.submitted:
            # Every job this run waited for, however it learnt the job was done (its
            # own polls, or status sweeps of the account's list that cost no poll).
            self.polls += record.polls
            self.transcripts_waited += 1
        self.audio_seconds += record.audio_duration or 0
        self.submitted += record.submitted
        self.reused += record.reused
        if record.submitted:
            if record.transcription_cost_usd is None:
                self.unpriced.add(record.speech_model or "the speech model (not reported)")
            else:
                self.transcription_cost += record.transcription_cost_usd
        for compared in record.transcriptions[1:]:  # the primary is the item's own
            self.submitted += compared.submitted
            self.reused += compared.reused
            if not compared.submitted:
                continue
            if compared.cost_usd is None:
                self.unpriced.add(compared.speech_model or "the speech model (not reported)")
            else:
                self.transcription_cost += compared.cost_usd
        for task in record.tasks:
            self.cached += task.cached
            self.asked += task.asked
            self.tasks[task.status] += 1
            if task.status == NOT_RUN:
                self.not_run_reason = self.not_run_reason or task.error
            if task.note:
                self.noted += 1
                if len(self.notes) < MAX_NOTES:
                    self.notes.append(f"{record.recipe}/{record.item} · {task.task}: {task.note}")
            if task.asked:  # cached replies were paid for by an earlier run
                self.input_tokens += task.input_tokens or 0
                self.output_tokens += task.output_tokens or 0
                if task.cost_usd is None:
                    self.unpriced.add(_unpriced_label(task))
                else:
                    self.llm_cost += task.cost_usd
            self.retries += task.retries
            self._count_judges(task)
            self.rates.add(record.recipe, task)
            if task.status == "failed" and task.error:
                self._fail(record.recipe, f"{record.item} · {task.task}", task.error)

    def _count_judges(self, task: TaskRecord) -> None:
        """A judge's calls are requests like a task's: counted, their tokens and cost."""
        for check in task.expectations:
            self.cached += check.cached
            self.asked += check.asked
            if check.asked:
                self.input_tokens += check.input_tokens or 0
                self.output_tokens += check.output_tokens or 0
                if check.cost_usd is None:
                    self.unpriced.add(_unpriced_label(check))
                else:
                    self.llm_cost += check.cost_usd

    def counts(self) -> dict[str, Any]:
        """The summary's counted fields (a run's manifest and a merged one share them)."""
        return {
            "items": dict(self.items),
            "groups": dict(self.groups),
            "tasks": dict(self.tasks),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "audio_hours": round(self.audio_seconds / 3600, 4),
            "retries": self.retries,
            "transcriptions_submitted": self.submitted,
            "transcriptions_reused": self.reused,
            "llm_calls": self.asked,
            "llm_replies_cached": self.cached,
            "polls_per_transcript": round(self.polls / self.transcripts_waited, 2)
            if self.transcripts_waited
            else None,
            "cost_usd": round(self.cost, 6) if self.cost or not self.unpriced else None,
            "cost_unknown_for": sorted(self.unpriced),
            "checks": self.rates.as_json(),
        }

    def _fail(self, recipe: str, what: str, error: str) -> None:
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append((recipe, what, error))


def _unpriced_label(task: TaskRecord | ExpectationRecord) -> str:
    """Why a paid call has no cost: its model has no price, or the API did not say how
    many tokens it used."""
    requested = task.model_requested if isinstance(task, TaskRecord) else None
    model = task.model_used or requested or "a model"
    if task.provider is not None:
        model = f"{task.provider}/{model}"
    if task.input_tokens is None or task.output_tokens is None:
        return f"{model} (usage not reported)"
    return model


def totals_of(records: Iterable[ItemRecord]) -> Totals:
    """The totals of ``records``, counted as the run counted them."""
    totals = Totals()
    for record in records:
        totals.add(record)
    return totals
