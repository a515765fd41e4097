"""JUnit XML of a run: a test case per item and task, for any CI's test reporter."""

# No `from __future__ import annotations` here or in the sibling report modules: it
# would bind the name `annotations`, which a report module of that name shadows.

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runner.results.manifest import Manifest, failed_expectations, item_records, ordered_by_recipe
from runner.results.rates import CheckRates, TaskGate, percent
from runner.results.records import (
    NOT_RUN,
    ExpectationRecord,
    ItemRecord,
    TaskRecord,
    TranscriptionRecord,
    totals_of,
)

ITEM_CASE = "transcript"  # the test case of an item that failed before its tasks


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0

    def add(self, other: "_Counts") -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped
        self.time += other.time

    def attributes(self) -> dict[str, str]:
        return {
            "tests": str(self.tests),
            "failures": str(self.failures),
            "errors": str(self.errors),
            "skipped": str(self.skipped),
            "time": f"{self.time:.3f}",
        }


def junit_xml(manifest: Manifest) -> str:
    """The run as JUnit XML: a test suite per recipe, a test case per item and task.

    A failed task is a ``<failure type="task">`` with its error; failed expectations a
    ``<failure type="expectation">`` listing every one; a skipped task ``<skipped>``.
    An item that failed before its tasks (its transcript) or was interrupted adds a
    test case with an ``<error>``. Tokens, models, cache use, retries and the
    transcript id are ``<property>`` elements of each test case.
    """
    root = ET.Element("testsuites", name="transcript-runner")
    total = _Counts()
    records = item_records(manifest)
    rates = totals_of(records).rates
    for recipe, items in ordered_by_recipe(manifest, records):
        suite = ET.SubElement(root, "testsuite", name=_xml(recipe))
        counts = _Counts()
        for record in items:
            for case in _cases(record):
                counts.add(_append(suite, case))
        for gate in rates.gates.values():
            if gate.recipe == recipe:
                counts.add(_append_gate(suite, gate, rates))
        _set_counts(suite, counts)
        total.add(counts)
    wall = manifest["summary"].get("wall_seconds")
    if isinstance(wall, int | float):
        total.time = float(wall)
    _set_counts(root, total)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


@dataclass
class _Case:
    record: ItemRecord
    name: str
    seconds: float | None
    line: int
    properties: dict[str, Any]
    outcome: str  # "", failure, error, skipped
    kind: str = ""  # the failure's or error's type
    message: str = ""
    text: str = ""


def _cases(record: ItemRecord) -> Iterator[_Case]:
    for task in record.tasks:
        yield _task_case(record, task)
    for made in record.transcriptions:
        if made.primary and made.status == "failed" and not made.expectations:
            continue  # its transcript could not be had: the item's error case says so
        yield _transcription_case(record, made)
    # An item failed by a transcription's check has said so in that case.
    said = {made.failure() for made in record.transcriptions}
    if record.error and record.error not in said:
        name = ITEM_CASE if not record.tasks else "item"
        yield _Case(
            record,
            name,
            record.transcript_seconds,
            0,
            _item_properties(record),
            "error",
            kind="interrupted" if record.status == "interrupted" else "transcript",
            message=record.error,
            text=record.error,
        )


def _task_case(record: ItemRecord, task: TaskRecord) -> _Case:
    seconds = task.seconds if task.seconds is not None else task.latency_seconds
    case = _Case(record, task.task, seconds, task.line, _task_properties(record, task), "")
    # Under a pass_rate an item's failed check is reported (its properties), and the
    # task's gate is the test case that fails: see _append_gate.
    failed = failed_expectations(task) if task.pass_rate is None else []
    if failed:
        # The task's own error only sums these up ("expectation failed: … (and 1 more)").
        lines = [f"{e.expect} (recipe line {e.line}): {e.message}" for e in failed]
        case.outcome, case.kind = "failure", "expectation"
        case.message = "; ".join(e.message or f"{e.expect} failed" for e in failed)
        case.text = "\n".join(lines)
    elif task.status == "failed":
        case.outcome, case.kind = "failure", "task"
        case.message = case.text = task.error or "failed"
    elif task.status in ("skipped", NOT_RUN):
        case.outcome, case.message = "skipped", task.error or "skipped"
    return case


def _transcription_case(record: ItemRecord, made: TranscriptionRecord) -> _Case:
    """A block of ``transcription:`` (the primary, or an engine compared): a failure
    when a check failed, an error when it could not be transcribed."""
    properties = {
        "engine": made.engine,
        "primary": made.primary,
        "wer": made.wer,
        "speech_model": made.speech_model,
        "cost_usd": made.cost_usd,
        "reused": made.reused,
    }
    name = f"transcription {made.engine}"
    line = made.expectations[0].line if made.expectations else 0
    case = _Case(record, name, made.seconds, line, properties, "")
    failed = [e for e in made.expectations if not e.passed]
    if failed:
        case.outcome, case.kind = "failure", "expectation"
        case.message = "; ".join(e.message or f"{e.expect} failed" for e in failed)
        case.text = "\n".join(f"{e.expect} (recipe line {e.line}): {e.message}" for e in failed)
    elif made.status == "failed":
        case.outcome, case.kind = "error", "transcript"
        case.message = case.text = made.error or "failed"
    return case


def _task_properties(record: ItemRecord, task: TaskRecord) -> dict[str, Any]:
    checks = {f"check: {check.expect}": _check_words(check) for check in task.expectations}
    return {
        **checks,
        "transcript_id": record.transcript_id,
        "model_requested": task.model_requested,
        "model_used": task.model_used,
        "fallback_used": task.fallback_used or None,
        "input_tokens": task.input_tokens,
        "output_tokens": task.output_tokens,
        "cost_usd": task.cost_usd,
        "cached": task.cached,
        "retries": task.retries,
        "request_id": task.request_id,
        "output": task.output,
        "row": record.row,
    }


def _check_words(check: ExpectationRecord) -> str:
    """``fail (warn) score 0.4: the reason``: a check's outcome as a property's value."""
    outcome = "pass" if check.passed else "fail"
    warn = " (warn)" if check.severity == "warn" else ""
    score = f" score {check.score:g}" if check.score is not None else ""
    reason = check.reason or check.message
    return f"{outcome}{warn}{score}" + (f": {reason}" if reason else "")


def _append_gate(suite: ET.Element, gate: TaskGate, rates: CheckRates) -> _Counts:
    """A task's ``pass_rate`` as a test case of its own: failed when too few items
    pass its checks, each check's rate in its output."""
    element = ET.SubElement(
        suite,
        "testcase",
        classname=_xml(f"{gate.recipe}.pass_rate"),
        name=_xml(f"{gate.task} pass_rate {percent(gate.pass_rate)}"),
        time="0.000",
    )
    lines = [check.words() for check in rates.of_task(gate.recipe, gate.task)]
    counts = _Counts(tests=1)
    if not gate.ok:
        (shortfall,) = [s for s in rates.below() if s.gate is gate]
        detail = ET.SubElement(
            element, "failure", message=_xml(shortfall.words()), type="pass_rate"
        )
        detail.text = _xml("\n".join(lines))
        counts.failures = 1
    else:
        ET.SubElement(element, "system-out").text = _xml("\n".join(lines))
    return counts


def _item_properties(record: ItemRecord) -> dict[str, Any]:
    return {
        "transcript_id": record.transcript_id,
        "source": record.source,
        "row": record.row,
        "audio_duration": record.audio_duration,
        "polls": record.polls,
        "submitted": record.submitted,
        "reused": record.reused,
    }


def _append(suite: ET.Element, case: _Case) -> _Counts:
    record = case.record
    seconds = case.seconds or 0.0
    element = ET.SubElement(
        suite,
        "testcase",
        classname=_xml(f"{record.recipe}.{record.item}"),
        name=_xml(case.name),
        time=f"{seconds:.3f}",
    )
    if record.recipe_file:
        element.set("file", _xml(record.recipe_file))
    if case.line > 0:
        element.set("line", str(case.line))
    properties = {k: v for k, v in case.properties.items() if v is not None}
    if properties:
        holder = ET.SubElement(element, "properties")
        for key, value in properties.items():
            ET.SubElement(holder, "property", name=key, value=_xml(_property(value)))
    counts = _Counts(tests=1, time=seconds)
    if case.outcome == "skipped":
        ET.SubElement(element, "skipped", message=_xml(case.message))
        counts.skipped = 1
    elif case.outcome:
        detail = ET.SubElement(element, case.outcome, message=_xml(case.message), type=case.kind)
        detail.text = _xml(case.text)
        counts.failures = int(case.outcome == "failure")
        counts.errors = int(case.outcome == "error")
    return counts


def _set_counts(element: ET.Element, counts: _Counts) -> None:
    for key, value in counts.attributes().items():
        element.set(key, value)


def _property(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Characters XML 1.0 cannot hold at all (escaping does not help): most C0 controls.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Text safe in an XML document: an API error quoting a control character must
    not make the whole report unreadable to the CI's parser."""
    return _NOT_XML.sub("\ufffd", text)
