"""Property tests: whatever a person types, ``validate`` answers with diagnostics, never a crash.

Two generators: (a) text, from arbitrary Unicode to YAML-looking fragments full of
tabs, colons, quotes, braces and Jinja delimiters; (b) recipe-shaped data that
mixes valid keys and values with wrong types, unknown keys and random templates,
dumped with PyYAML's safe dumper. Either way the only acceptable outcomes are a
document or a :class:`DiagnosticError` from the loader, and a
:class:`~runner.checks.Validation` whose diagnostics are located and worded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.checks import Validation, validate_file
from runner.errors import DiagnosticError
from runner.recipe import schema
from runner.recipe.document import load_text

# Hundreds of generated recipes a test: seconds each, so they start first (conftest).
pytestmark = pytest.mark.slow

# FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the file under a few seconds.
SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# safe_dump's representer, on libyaml's emitter when PyYAML has it: the pure-Python
# one took a sixth of this file's time.
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

TRANSCRIPT_ID = "6c1b8a4e-1f4e-4c2e-9d2a-3f6f0e8b1a77"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipe folder with a list file, a transcript and a prompt file to refer to."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "calls.csv").write_text(f"transcript_id,customer\n{TRANSCRIPT_ID},Northwind\n")
    (folder / "transcripts").mkdir()
    (folder / "transcripts" / "t.json").write_text(json.dumps({"id": "t", "text": "Hello."}))
    (folder / "prompts").mkdir()
    (folder / "prompts" / "p.md.j2").write_text("Summarize: {{ transcript.text }}\n")
    return folder


def assert_well_formed(result: Validation) -> None:
    assert isinstance(result, Validation)
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 0
        assert diagnostic.column >= 0
        assert diagnostic.message.strip()
        assert "Traceback" not in diagnostic.message
        assert diagnostic.format()  # every diagnostic can be printed


def validate_text(folder: Path, text: str) -> Validation:
    path = folder / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return validate_file(path)


# --- (a) text -----------------------------------------------------------------------------

FRAGMENTS = [
    *("version", "name", "inputs", "tasks", "summary", "prompt", "model", "needs", "vars"),
    *(":", ": ", "- ", "  ", "    ", "\t", "\n", "\r\n", "'", '"', "\\", "#", "|", ">", "?"),
    *("{", "}", "[", "]", ",", "{{", "}}", "{%", "%}", "{#", "&a", "*a", "<<: *a", "!!str"),
    *("!!python/object:x", "---", "...", "1", "0b_", "no", "~", "2024-01-01", "é", "日本"),
    *("transcript.text", "vars.x", "tasks.summary.text", "| dialogue", "\u2028", "\x85"),
]

yamlish = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)

RECIPE_HEAD = f"version: 1\nname: fuzz\ninputs:\n  - transcript_id: {TRANSCRIPT_ID}\n"


def _with_head(body: str) -> str:
    return RECIPE_HEAD + "tasks:\n  summary:\n" + body


any_text = st.one_of(
    st.text(max_size=300),
    yamlish,
    yamlish.map(_with_head),
    # random template text in an otherwise valid recipe reaches the Jinja checks
    st.text(max_size=80).map(lambda t: _with_head(f"    prompt: {json.dumps(t)}\n")),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(
        lambda parts: _with_head(f"    prompt: {json.dumps(''.join(parts))}\n")
    ),
)


@SETTINGS
@given(text=any_text)
def test_load_text_then_schema_never_crashes(text: str) -> None:
    try:
        doc = load_text(text, "recipe.yaml")
    except DiagnosticError as error:
        found = [error.diagnostic]
    else:
        found = schema.check(doc)
    for diagnostic in found:
        assert diagnostic.message.strip()
        assert diagnostic.line >= 0


@SETTINGS
@given(text=any_text)
def test_validate_file_never_crashes_on_text(workdir: Path, text: str) -> None:
    assert_well_formed(validate_text(workdir, text))


# --- (b) recipe-shaped data -----------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

TEMPLATE_PARTS = [
    "Summarize: ",
    "{{ transcript.text }}",
    "{{ transcript.txt }}",
    "{{ transcript }}",
    "{{ vars.audience }}",
    "{{ vars.nope }}",
    "{{ item.name }}",
    "{{ recipe.name }}",
    "{{ tasks.first.text }}",
    "{{ tasks.first.json.items }}",
    "{{ gateway_transcript }}",
    "{{ transcript.utterances | dialogue }}",
    "{{ transcript.text | truncate_tokens(10) }}",
    "{{ transcript.audio_duration | duration }}",
    "{{ 1 / 0 }}",
    "{{ transcript.text | nosuchfilter }}",
    "{{ ''.__class__.__mro__ }}",
    "{% include 'prompts/p.md.j2' %}",
    "{% include '../secret' %}",
    "{% if transcript.utterances %}",
    "{% endif %}",
    "{% for s in transcript.sentences %}{{ s.text }}{% endfor %}",
    "{{",
    "}}",
    "{%",
    "\n",
    "é",
]

templates = st.lists(st.sampled_from(TEMPLATE_PARTS), min_size=1, max_size=6).map("".join)
identifiers = st.sampled_from(["first", "second", "summary", "my-task", "2nd", "x"])
models = st.sampled_from(["claude-sonnet-4-6", "gpt-4.1", ""])

TASK_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "prompt": templates,
    "prompt_file": st.sampled_from(["prompts/p.md.j2", "missing.j2", "../escape.j2", "/abs.j2"]),
    "system": templates,
    "messages": st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "user", "assistant", "robot"]),
                "content": templates,
            }
        ),
        max_size=3,
    ),
    "quotes": st.fixed_dictionaries(
        {},
        optional={
            "count": st.integers(-1, 60),
            "window": st.integers(-1, 30),
            "overlap": st.integers(-1, 30),
            "question": templates,
        },
    ),
    "api": st.sampled_from(["gateway", "lemur", "openai"]),
    "model": models,
    "max_tokens": st.one_of(st.integers(-5, 5000), st.just("ten")),
    "temperature": st.one_of(st.floats(-1, 3, allow_nan=False), st.just("high")),
    "needs": st.lists(identifiers, max_size=3),
    "json_schema": st.one_of(
        st.just({"type": "object", "properties": {"items": {"type": "array"}}}),
        st.just({"type": "objekt"}),
        st.just({"type": "object", "required": "items"}),
        st.dictionaries(st.sampled_from(["type", "properties", "items", "enum"]), json_values),
    ),
    "post_process": st.lists(
        st.one_of(
            st.sampled_from(["strip-code-fences", "json-repair", "json-schema", "trim", "jsn"]),
            st.fixed_dictionaries({"extract": st.text(max_size=10)}),
            st.fixed_dictionaries({"extrct": st.text(max_size=10)}),
        ),
        max_size=4,
    ),
    "gateway_post_processing": st.lists(st.sampled_from(["json-repair", "other"]), max_size=2),
    "fallbacks": st.lists(st.fixed_dictionaries({"model": models}), max_size=2),
    "fallback_config": st.fixed_dictionaries({}, optional={"depth": st.integers(0, 3)}),
    "tools": st.lists(
        st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries({"name": identifiers})}
        ),
        max_size=2,
    ),
    "tool_choice": st.sampled_from(["auto", "none", "sometimes"]),
    "stream": st.one_of(st.booleans(), st.just("yes")),
    "inject_transcript": st.booleans(),
    "output": st.sampled_from(["out.md", "run.json", "../x.md", "a/b.json", "", "same.md"]),
    "context": st.one_of(st.text(max_size=10), st.just({"a": 1})),
    "final_model": st.just("anthropic/claude-3-7-sonnet-20250219"),
    "max_output_size": st.integers(0, 5000),
    "modle": models,
    "description": st.text(max_size=10),
}

tasks = st.fixed_dictionaries(
    {},
    optional=dict(TASK_OPTIONS),
)

inputs = st.lists(
    st.one_of(
        st.fixed_dictionaries({"transcript_id": st.just(TRANSCRIPT_ID)}),
        st.fixed_dictionaries(
            {"url": st.sampled_from(["https://a.example/b.mp3", "not a url"])},
            optional={"name": templates, "vars": st.dictionaries(identifiers, scalars, max_size=2)},
        ),
        st.fixed_dictionaries(
            {"transcript_file": st.sampled_from(["transcripts/*.json", "*.nope"])}
        ),
        st.fixed_dictionaries(
            {"list": st.sampled_from(["calls.csv", "missing.csv", "calls.txt"])},
            optional={"name": templates},
        ),
        st.fixed_dictionaries({"file": st.just("audio/*.wav"), "url": st.just("https://a/b")}),
        st.dictionaries(st.text(max_size=8), json_values, max_size=2),
    ),
    max_size=3,
)

transcription = st.dictionaries(
    st.sampled_from(
        [
            "speaker_labels",
            "speaker_label",
            "language_code",
            "speech_models",
            "speech_model",
            "redact_pii_policies",
            "summarization",
            "punctuate",
        ]
    ),
    json_values,
    max_size=4,
)

recipes = st.fixed_dictionaries(
    {
        "version": st.one_of(st.just(1), st.just(1), json_values),
        "name": st.one_of(st.just("fuzz"), st.text(max_size=12)),
        "inputs": st.one_of(inputs, json_values),
        "tasks": st.one_of(
            st.dictionaries(identifiers, tasks, min_size=1, max_size=3),
            st.dictionaries(identifiers, json_values, max_size=2),
            json_values,
        ),
    },
    optional={
        "description": json_values,
        "transcription": st.one_of(transcription, json_values),
        "vars": st.dictionaries(
            st.sampled_from(["audience", "x", "my-var"]), json_values, max_size=3
        ),
        "defaults": st.fixed_dictionaries(
            {}, optional={k: TASK_OPTIONS[k] for k in ("model", "max_tokens", "system", "stream")}
        ),
        "output": st.fixed_dictionaries({"dir": templates}),
        "taks": json_values,
    },
)


# Mostly valid recipes, so that generated data gets past the schema to the checks of
# needs, outputs, inputs and templates, with at most one wild value mixed in.
TASK_NAMES = ["first", "second", "summary"]

good_options: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["claude-sonnet-4-6", "gpt-4.1"]),
    "max_tokens": st.integers(1, 4000),
    "temperature": st.floats(0, 2),
    "system": templates,
    "needs": st.lists(st.sampled_from([*TASK_NAMES, "nope"]), max_size=2, unique=True),
    "json_schema": st.sampled_from(
        [
            {"type": "object", "properties": {"items": {"type": "array"}}},
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
            {"type": "objekt"},
        ]
    ),
    "post_process": st.lists(
        st.sampled_from(["strip-code-fences", "json-repair", "json-schema", "trim"]), max_size=3
    ),
    "output": st.sampled_from(["same.md", "a.md", "b.json", "run.json", "../x.md", "d/"]),
    "inject_transcript": st.booleans(),
    "api": st.sampled_from(["gateway", "lemur"]),
    "final_model": st.just("anthropic/claude-3-7-sonnet-20250219"),
}

prompt_sources = st.one_of(
    st.fixed_dictionaries({"prompt": templates}),
    st.fixed_dictionaries({"prompt_file": st.sampled_from(["prompts/p.md.j2", "no.j2"])}),
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries({"role": st.just("user"), "content": templates}),
                min_size=1,
                max_size=2,
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "quotes": st.fixed_dictionaries(
                {}, optional={"question": templates, "count": st.integers(1, 5)}
            )
        }
    ),
)


@st.composite
def near_valid_recipes(draw: st.DrawFn) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=3, unique=True)):
        task = draw(prompt_sources)
        task.update(draw(st.fixed_dictionaries({}, optional=good_options)))
        if draw(st.booleans()):
            key = draw(st.sampled_from(sorted(TASK_OPTIONS)))
            task[key] = draw(TASK_OPTIONS[key])
        tasks[name] = task
    recipe: dict[str, Any] = {
        "version": 1,
        "name": "fuzz",
        "inputs": draw(inputs.filter(bool)),
        "vars": {"audience": draw(st.text(max_size=10)), "x": draw(scalars)},
        "tasks": tasks,
    }
    if draw(st.booleans()):
        recipe["output"] = {"dir": draw(templates)}
    if draw(st.booleans()):
        recipe["transcription"] = draw(transcription)
    return recipe


@SETTINGS
@given(data=st.one_of(recipes, near_valid_recipes()))
def test_validate_file_never_crashes_on_recipe_shaped_data(
    workdir: Path, data: dict[str, Any]
) -> None:
    text = yaml.dump(data, Dumper=DUMPER, allow_unicode=True, sort_keys=False)
    result = validate_text(workdir, text)
    assert_well_formed(result)
    if result.ok:
        assert result.recipe is not None
