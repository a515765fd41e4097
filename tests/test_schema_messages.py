"""How JSON Schema errors read to a person: one located, plain-English message per mistake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.diagnostics import Diagnostic, Severity
from runner.recipe import schema
from runner.recipe.document import load_text

REPO = Path(__file__).parent.parent

HEAD = """\
version: 1
name: x
inputs:
  - transcript_id: abc
"""


def check(text: str) -> list[Diagnostic]:
    return schema.check(load_text(text, "r.yaml"))


def messages(text: str) -> list[tuple[int, int, str, str]]:
    return [(d.line, d.column, d.path, d.message) for d in check(text)]


def task(body: str) -> str:
    """A recipe whose only task has ``body`` (indented by the caller's four spaces)."""
    return HEAD + "tasks:\n  summary:\n    prompt: p\n" + body


def test_a_valid_recipe_has_no_messages() -> None:
    assert check(task("    model: gpt-4.1\n")) == []


# --- oneOf / anyOf: report the branch the person meant -----------------------------------


def test_post_process_typo_gets_the_enum_did_you_mean() -> None:
    assert messages(task("    post_process: [json-repiar]\n")) == [
        (
            8,
            20,
            "$.tasks.summary.post_process[0]",
            "'json-repiar' is not allowed here; use one of strip-code-fences, json-repair, "
            "json-schema, trim; did you mean 'json-repair'?",
        )
    ]


def test_extract_typo_is_one_unknown_key_not_also_a_missing_key() -> None:
    found = messages(task("    post_process: [{extrct: a}]\n"))
    assert found == [
        (
            8,
            21,
            "$.tasks.summary.post_process[0].extrct",
            "unknown key 'extrct'; did you mean 'extract'?",
        )
    ]
    assert not any("missing" in message for *_, message in found)


def test_post_process_step_of_no_possible_kind_uses_the_custom_message() -> None:
    [(_, _, path, message)] = messages(task("    post_process: [3]\n"))
    assert path == "$.tasks.summary.post_process[0]"
    assert message.startswith("a post_process step is one of 'strip-code-fences'")


def test_task_without_a_prompt_names_the_choices() -> None:
    text = HEAD + "tasks:\n  summary:\n    model: gpt-4.1\n"
    assert messages(text) == [
        (
            6,
            3,
            "$.tasks.summary",
            "task 'summary' needs one of 'prompt', 'prompt_file', 'messages', 'quotes' or 'export'",
        )
    ]


def test_task_with_two_prompts_keeps_one() -> None:
    [(line, _, path, message)] = messages(task("    prompt_file: a.j2\n"))
    assert (line, path) == (8, "$.tasks.summary.prompt_file")
    assert message == "task 'summary' has 'prompt' and 'prompt_file'; keep only one of them"


def test_input_with_two_sources() -> None:
    text = HEAD.replace("abc\n", "abc\n    url: https://a/b.mp3\n") + "tasks: {s: {prompt: p}}\n"
    [(_, _, path, message)] = messages(text)
    assert path == "$.inputs[0].url"
    assert message == "input #1 has 'url' and 'transcript_id'; keep only one of them"


def test_language_code_no_is_the_yaml_boolean_trap() -> None:
    text = HEAD + "transcription:\n  language_code: no\ntasks: {s: {prompt: p}}\n"
    [(line, column, path, message)] = messages(text)
    assert (line, column, path) == (6, 18, "$.transcription.language_code")
    assert message.endswith("YAML reads no as true/false: write it in quotes, 'no'")


# --- required -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ninputs: [{url: https://a/b.mp3}]\ntasks: {s: {prompt: p}}\n",
            "the recipe is missing the required key 'version', e.g. `version: 1`",
        ),
        (
            "version: 1\nname: x\ntasks: {s: {prompt: p}}\n",
            "the recipe is missing the required key 'inputs', "
            'e.g. `inputs: [{"url": "https://assembly.ai/wildfires.mp3"}]`',
        ),
        (
            HEAD,
            "the recipe is missing the required key 'tasks', "
            'e.g. `tasks: {"summary": {"prompt": "Summarize: {{ transcript.text }}"}}`',
        ),
    ],
)
def test_required_key_with_an_example(text: str, expected: str) -> None:
    assert messages(text) == [(1, 1, "$", expected)]


def test_missing_key_explained_by_its_own_typo_is_one_message() -> None:
    text = HEAD + "taks:\n  s: {prompt: p}\n"
    assert messages(text) == [(5, 1, "$.taks", "unknown key 'taks'; did you mean 'tasks'?")]


def test_required_key_inside_a_list_item() -> None:
    text = task("    fallbacks: [{max_tokens: 5}]\n")
    [(_, _, path, message)] = messages(text)
    assert path == "$.tasks.summary.fallbacks[0]"
    assert message.startswith("this mapping is missing the required key 'model', e.g. `model: ")


# --- propertyNames ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["my-task", "2nd", "with space"])
def test_task_names_must_be_identifiers(name: str) -> None:
    text = HEAD + f"tasks:\n  {name!r}:\n    prompt: p\n"
    [(line, column, _, message)] = messages(text)
    assert (line, column) == (6, 3)
    assert message == (
        f"task name {name!r} may use only letters, digits and '_' and must not start with "
        "a digit (templates refer to it by this name)"
    )


def test_variable_names_must_be_identifiers() -> None:
    text = HEAD + "vars:\n  my-var: 1\ntasks: {s: {prompt: p}}\n"
    [(_, _, path, message)] = messages(text)
    assert path == "$.vars.my-var"
    assert message.startswith("variable name 'my-var' may use only letters")


# --- types and values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '    max_tokens: "ten"\n',
            "expected a whole number, got the text 'ten'; e.g. `max_tokens: 1000`",
        ),
        (
            '    max_tokens: "500"\n',
            "expected a whole number, got the text '500'; remove the quotes around the number",
        ),
        (
            "    temperature: high\n",
            "expected a number, got the text 'high'; e.g. `temperature: 0`",
        ),
        ("    temperature: 5\n", "5 is too large; the maximum is 2"),
        ("    max_tokens: 0\n", "0 is too small; the minimum is 1"),
        (
            "    needs: summary\n",
            "expected a list, got the text 'summary'; write a list, e.g. [summary]",
        ),
        (
            "    model:\n",
            "expected text or a mapping of keys, got nothing (an empty value); write the value "
            "after 'model:'",
        ),
        ("    stream: 1\n", "expected true or false, got the number 1; e.g. `stream: false`"),
    ],
)
def test_wrong_types_say_what_to_write(body: str, expected: str) -> None:
    [(line, _, _, message)] = messages(task(body))
    assert line == 8
    assert message == expected


def test_a_list_written_without_dashes() -> None:
    text = "version: 1\nname: x\ninputs:\n  url: https://a/b.mp3\ntasks: {s: {prompt: p}}\n"
    assert messages(text) == [
        (4, 3, "$.inputs", "expected a list, got a mapping; start each entry of the list with '- '")
    ]


def test_a_mapping_left_empty() -> None:
    text = HEAD + "tasks:\nsummary:\n  prompt: p\n"
    assert messages(text)[0] == (
        5,
        7,
        "$.tasks",
        "expected a mapping of keys, got nothing (an empty value); write its entries on the "
        "lines below it, indented under the key",
    )


def test_unknown_key_far_from_any_lists_the_allowed_keys() -> None:
    [(_, _, path, message)] = messages(task("    zzz: 1\n"))
    assert path == "$.tasks.summary.zzz"
    assert message.startswith("unknown key 'zzz'; allowed here: description, api, prompt, ")


def test_version_two() -> None:
    text = HEAD.replace("version: 1", "version: 2") + "tasks: {s: {prompt: p}}\n"
    assert messages(text) == [
        (1, 10, "$.version", "unsupported recipe version 2; this transcript-runner reads version 1")
    ]


def test_all_errors_are_collected_and_sorted() -> None:
    text = task("    modle: m\n    temperature: high\n")
    assert [(line, path) for line, _, path, _ in messages(text)] == [
        (8, "$.tasks.summary.modle"),
        (9, "$.tasks.summary.temperature"),
    ]


# --- transcription options and deprecations ---------------------------------------------


def test_misspelled_transcription_options() -> None:
    text = (
        HEAD
        + "transcription:\n  speaker_label: true\n  lanugage_code: en\ntasks: {s: {prompt: p}}\n"
    )
    assert [m for *_, m in messages(text)] == [
        "unknown transcription option 'speaker_label'; did you mean 'speaker_labels'?",
        "unknown transcription option 'lanugage_code'; did you mean 'language_code'?",
    ]


def test_deprecated_option_warns_with_its_replacement() -> None:
    text = (
        HEAD + "transcription:\n  speech_model: best\n  word_boost: [a]\ntasks: {s: {prompt: p}}\n"
    )
    found = check(text)
    # word_boost was removed from the API, not deprecated: validate refuses it (an
    # error from runner.checks), so the schema's deprecation pass stays quiet about it.
    assert [d.severity for d in found] == [Severity.WARNING]
    options = schema.transcription_options_schema()["properties"]
    (first,) = found
    assert (first.line, first.column, first.path) == (6, 3, "$.transcription.speech_model")
    assert first.message == (
        f"'speech_model' is deprecated by AssemblyAI. {options['speech_model']['x-replacement']}"
    )


def test_transcription_options_are_generated_into_the_recipe_schema() -> None:
    recipe: dict[str, Any] = json.loads(
        (REPO / "schemas" / "recipe.schema.json").read_text(encoding="utf-8")
    )
    options = recipe["$defs"]["TranscriptionOptions"]
    listed = recipe["properties"]["transcription"]
    # One block, or a list of them (engines compared side by side).
    assert listed["else"] == {"$ref": "#/$defs/transcription_block"}
    assert listed["then"]["items"] == {"$ref": "#/$defs/transcription_block"}
    transcription = recipe["$defs"]["transcription_block"]
    # AssemblyAI's options, unless an `engine` transcribes on this machine.
    assert transcription["else"] == {"$ref": "#/$defs/TranscriptionOptions"}
    assert transcription["then"] == {"$ref": "#/$defs/LocalTranscription"}
    # The runner's own key beside AssemblyAI's, in both kinds of block.
    assert "expect" in options["properties"]
    assert "expect" in recipe["$defs"]["LocalTranscription"]["properties"]
    assert options["additionalProperties"] is False
    assert {"speech_models", "speaker_labels", "language_code"} <= set(options["properties"])
    Draft202012Validator.check_schema(recipe)


def test_every_deprecated_option_names_its_replacement() -> None:
    options = schema.transcription_options_schema()["properties"]
    deprecated = {name: spec for name, spec in options.items() if spec.get("deprecated")}
    assert deprecated, "AssemblyAI's spec deprecates several options; the schema lost them"
    for name, spec in deprecated.items():
        replacement = spec.get("x-replacement")
        assert isinstance(replacement, str), name
        assert replacement.strip(), name
