"""Expectations: checks on a task's result, run after post-processing.

A failed expectation fails the task (and the exit code) but keeps its output, so a
person can read what the model said. The set is what transcript teams check most:
text that must or must not appear, patterns, sizes, structured replies that match
their schema or hold certain values, and quotes that really are in the transcript.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator

from runner.errors import PostProcessFailed
from runner.execute.postprocess import extract
from runner.recipe.model import Expectation, Task, thaw
from runner.results.records import ExpectationRecord, TaskRecord
from runner.transcript.grounding import quoted_spans

QUOTE_MATCH = 90.0  # rapidfuzz partial_ratio; allows punctuation and casing to differ


def expect(task: Task, record: TaskRecord, text: str, data: Any, transcript: str) -> None:
    """Check the task's expectations that need nothing but the result (graded checks
    are :mod:`runner.execute.graded`'s), then :func:`settle` the task when that is all."""
    record.expectations = check(
        task.expectations,
        text=text,
        data=data,
        transcript_text=transcript,
        json_schema=task.json_schema,
    )
    if not any(e.graded for e in task.expectations):
        settle(task, record)


def settle(task: Task, record: TaskRecord) -> None:
    """The task's checks in recipe order; a failed one fails the task, naming the
    first, unless it is `severity: warn` or the task has a `pass_rate` (then the run's
    rates decide: :mod:`runner.results.rates`)."""
    record.pass_rate = task.pass_rate
    failed = [e for e in record.expectations if e.failing]
    if failed and task.pass_rate is None:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        record.fail(f"expectation failed: {failed[0].expect}: {failed[0].message}{more}")


def check(
    expectations: Sequence[Expectation],
    *,
    text: str,
    data: Any,
    transcript_text: str,
    json_schema: Mapping[str, Any] | None,
) -> list[ExpectationRecord]:
    """One record per expectation that is not graded, in recipe order."""
    records = []
    for expectation in expectations:
        if expectation.graded:
            continue
        problem = _problem(expectation, text, data, transcript_text, json_schema)
        records.append(
            ExpectationRecord(
                expect=expectation.describe(),
                passed=problem is None,
                message=problem or "",
                line=expectation.line,
                kind=expectation.kind,
                severity=expectation.severity,
                reason=problem or "",
            )
        )
    return records


def _problem(
    expectation: Expectation,
    text: str,
    data: Any,
    transcript_text: str,
    json_schema: Mapping[str, Any] | None,
) -> str | None:
    kind, value = expectation.kind, thaw(expectation.value)
    haystack = text.lower() if expectation.ignore_case else text
    needle = str(value).lower() if expectation.ignore_case else str(value)
    if kind == "contains":
        return None if needle in haystack else f"the result does not contain {value!r}"
    if kind == "not_contains":
        return f"the result contains {value!r}" if needle in haystack else None
    if kind in ("regex", "not_regex"):
        flags = re.IGNORECASE | re.MULTILINE if expectation.ignore_case else re.MULTILINE
        found = re.search(str(value), text, flags) is not None
        if kind == "regex":
            return None if found else f"no match for the pattern {value!r}"
        return f"the pattern {value!r} matches" if found else None
    if kind == "equals":
        return _equals_problem(value, text, data)
    if kind == "min_length":
        return None if len(text) >= value else f"{len(text)} characters, fewer than {value}"
    if kind == "max_length":
        return None if len(text) <= value else f"{len(text)} characters, more than {value}"
    if kind == "json_schema":
        return _schema_problem(data, json_schema)
    if kind == "json":
        return _json_problem(data, value)
    if kind == "quotes_in_transcript":
        return _quotes_problem(text, data, transcript_text)
    return f"unknown expectation {kind!r}"


def _equals_problem(value: Any, text: str, data: Any) -> str | None:
    """Text is compared as text; a JSON value as JSON, where true is not 1."""
    if data is not None and not isinstance(value, str):
        same = _strict_equal(data, value)
        return None if same else f"expected {value!r}, got {_short(data)}"
    expected = value if isinstance(value, str) else json.dumps(value)
    actual = text.strip()
    return None if actual == expected else f"expected {expected!r}, got {_short(actual)}"


def _strict_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_strict_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_strict_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _schema_problem(data: Any, json_schema: Mapping[str, Any] | None) -> str | None:
    if json_schema is None:
        return "the task has no json_schema to check against"
    errors = list(Draft202012Validator(thaw(json_schema)).iter_errors(data))
    if not errors:
        return None
    first = errors[0]
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.path)
    return f"does not match the json_schema at {where}: {first.message}"


def _json_problem(data: Any, spec: Mapping[str, Any]) -> str | None:
    path = str(spec["path"])
    if data is None:
        return f"json {path}: the result is not JSON"
    try:
        value = extract(data, path)
    except PostProcessFailed:
        return None if spec.get("exists") is False else f"json {path}: no such field"
    if spec.get("exists") is False:
        return f"json {path}: the field exists"
    checks = (
        ("equals", lambda v, want: v == want, "is {v!r}, expected {want!r}"),
        ("min_items", lambda v, want: _size(v) >= want, "has {n} items, fewer than {want}"),
        ("max_items", lambda v, want: _size(v) <= want, "has {n} items, more than {want}"),
        ("min", lambda v, want: _number(v) >= want, "is {v!r}, below {want}"),
        ("max", lambda v, want: _number(v) <= want, "is {v!r}, above {want}"),
        ("contains", lambda v, want: want in v, "does not contain {want!r}"),
    )
    for op, passes, message in checks:
        if op in spec:
            want = spec[op]
            try:
                ok = _strict_equal(value, want) if op == "equals" else passes(value, want)
            except TypeError:
                ok = False
            if not ok:
                size = _size(value) if isinstance(value, list | dict | str) else "?"
                return f"json {path} " + message.format(v=value, want=want, n=size)
    return None


def _quotes_problem(text: str, data: Any, transcript_text: str) -> str | None:
    from rapidfuzz import fuzz

    quotes = quoted_spans(text, data)
    if not quotes:
        return "the result quotes nothing (no text in double quotes)"
    source = transcript_text.lower()
    missing = [q for q in quotes if fuzz.partial_ratio(q.lower(), source) < QUOTE_MATCH]
    if not missing:
        return None
    return f"{len(missing)} of {len(quotes)} quotes are not in the transcript: {missing[0]!r}"


def _size(value: Any) -> int:
    return len(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
