"""Expectations on task results: what passes, what fails, and how it reads."""

from __future__ import annotations

from typing import Any

import pytest

from runner.execute.expectations import Expectation, check
from runner.recipe.model import freeze

TRANSCRIPT = "Smoke from hundreds of wildfires in Canada is triggering air quality alerts."
SCHEMA = freeze(
    {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}
)


def run(kind: str, value: Any, text: str = "", data: Any = None, ignore_case: bool = False):
    (record,) = check(
        [Expectation(kind, freeze(value), ignore_case, 7)],
        text=text,
        data=data,
        transcript_text=TRANSCRIPT,
        json_schema=SCHEMA,
    )
    return record


@pytest.mark.parametrize(
    ("kind", "value", "text", "data", "message"),
    [
        ("contains", "Maine", "Maryland and Maine", None, ""),
        ("contains", "Ohio", "Maryland and Maine", None, "the result does not contain 'Ohio'"),
        ("not_contains", "As an AI", "As an AI model, I", None, "the result contains 'As an AI'"),
        ("regex", r"^- ", "intro\n- point", None, ""),
        ("not_regex", r"(?i)sorry", "Sorry, no.", None, "the pattern '(?i)sorry' matches"),
        ("equals", "yes", "  yes \n", None, ""),
        ("min_length", 20, "short", None, "5 characters, fewer than 20"),
        ("max_length", 3, "four", None, "4 characters, more than 3"),
        (
            "json_schema",
            True,
            "{}",
            {},
            "does not match the json_schema at $: 'items' is a required property",
        ),
        (
            "json",
            {"path": "items", "min_items": 1},
            "",
            {"items": []},
            "json items has 0 items, fewer than 1",
        ),
        ("json", {"path": "items.0.owner", "equals": "Ann"}, "", {"items": [{"owner": "Ann"}]}, ""),
        ("json", {"path": "missing", "exists": False}, "", {"items": []}, ""),
        ("json", {"path": "score", "max": 1}, "", {"score": 3}, "json score is 3, above 1"),
        ("quotes_in_transcript", True, 'He said "hundreds of wildfires in Canada".', None, ""),
        (
            "quotes_in_transcript",
            True,
            'He said "the lake froze over in July" twice.',
            None,
            "1 of 1 quotes are not in the transcript: 'the lake froze over in July'",
        ),
    ],
)
def test_checks(kind: str, value: Any, text: str, data: Any, message: str) -> None:
    record = run(kind, value, text, data)
    assert (record.passed, record.message) == (not message, message)
    assert record.line == 7


def test_ignore_case() -> None:
    assert run("contains", "MAINE", "maine", ignore_case=True).passed
    assert not run("contains", "MAINE", "maine").passed


def test_quotes_of_a_best_quotes_task() -> None:
    data = [{"quote": "hundreds of wildfires in Canada"}, {"quote": "a made up quote here"}]
    record = run("quotes_in_transcript", True, "[]", data)
    assert record.message == "1 of 2 quotes are not in the transcript: 'a made up quote here'"


def test_descriptions() -> None:
    assert run("contains", "Maine").expect == "contains 'Maine'"
    assert run("json", {"path": "items", "min_items": 1}).expect == "json items: min_items 1"
    assert run("quotes_in_transcript", True).expect == "quotes in transcript"


def test_equals_is_type_strict_and_reads_text_as_json_text() -> None:
    assert run("equals", 42, "42").passed
    assert not run("equals", 1, "true", True).passed
    assert run("json", {"path": "ok", "equals": True}, "", {"ok": True}).passed
    assert not run("json", {"path": "ok", "equals": 0}, "", {"ok": False}).passed


def test_quotes_are_read_pair_by_pair() -> None:
    text = 'She said "Yes" and then, after a long pause, "hundreds of wildfires in Canada".'
    assert run("quotes_in_transcript", True, text).passed
