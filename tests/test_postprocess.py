"""Local post-processing of replies: order, repair, schema checks, extraction."""

from __future__ import annotations

import pytest

from runner.errors import PostProcessFailed
from runner.execute.postprocess import apply, extract, strip_code_fences
from runner.recipe.model import PostStep, freeze

SCHEMA = freeze(
    {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"type": "object"}}},
    }
)


def steps(*names: str) -> tuple[PostStep, ...]:
    return tuple(
        PostStep("extract", n.split(":", 1)[1]) if n.startswith("extract:") else PostStep(n)
        for n in names
    )


def test_fenced_near_json_is_repaired_and_validated() -> None:
    reply = '```json\n{"items": [{"owner": "Ann",},]}\n```'
    result = apply(reply, steps("strip-code-fences", "json-repair"), SCHEMA)
    assert result.data == {"items": [{"owner": "Ann"}]}
    assert result.steps == ("strip-code-fences", "json-repair", "json-schema")
    assert result.text == '{\n  "items": [\n    {\n      "owner": "Ann"\n    }\n  ]\n}'
    assert result.changed


def test_schema_mismatch_names_the_place() -> None:
    with pytest.raises(PostProcessFailed) as failed:
        apply('{"items": [1]}', (), SCHEMA)
    assert str(failed.value) == (
        "the reply does not match the task's json_schema at $.items[0]: 1 is not of type 'object'"
    )


def test_invalid_json_without_repair_says_how_to_fix() -> None:
    with pytest.raises(PostProcessFailed) as failed:
        apply("Sure! Here it is: {", (), SCHEMA)
    assert "add `post_process: [json-repair]`" in str(failed.value)


def test_extract_after_an_implicit_schema_check() -> None:
    reply = '{"items": [{"owner": "A", "task": "B"}]}'
    result = apply(reply, steps("json-repair", "extract:items.0.owner"), SCHEMA)
    assert result.data == "A"
    assert result.text == "A"
    assert result.steps == ("json-repair", "json-schema", "extract items.0.owner")
    with pytest.raises(PostProcessFailed):  # the whole reply is checked before extracting
        apply('{"items": "nope"}', steps("extract:items"), SCHEMA)


def test_extract_reports_the_missing_key_and_what_exists() -> None:
    with pytest.raises(PostProcessFailed) as failed:
        extract({"summary": {"text": "x"}}, "summary.txt")
    assert str(failed.value) == "extract summary.txt: the reply has no 'summary.txt' (it has: text)"


def test_plain_text_steps() -> None:
    result = apply("  hello \n", steps("trim"), None)
    assert (result.text, result.data, result.changed) == ("hello", None, True)
    assert strip_code_fences("no fence") == "no fence"
    assert strip_code_fences("```\nbody\n```") == "body"


def test_unrepairable_reply_fails() -> None:
    with pytest.raises(PostProcessFailed):
        apply("I cannot help with that.", steps("json-repair"), SCHEMA)
