"""Every request the runner can send, checked against AssemblyAI's own OpenAPI specs.

The specs are vendored (vendor/assemblyai/): ``TranscriptOptionalParams`` for the
transcription options, ``LLMGatewayRequest`` for chat completions and
``LemurTaskParams`` for the (deprecated) LeMUR task endpoint. The requests are built by
the runner's own code, for every shipped recipe and for a recipe that uses every
Gateway feature, so a change that would send something the API refuses fails here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.checks import load_recipe
from runner.checks.dry_run import sample_context, sample_item_vars
from runner.prompt.payloads import build_payload
from runner.prompt.templating import TemplateEngine
from runner.recipe.model import Recipe, TaskApi

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "vendor" / "assemblyai"

EVERY_FEATURE = """\
version: 1
name: features
inputs: [{url: 'https://example.com/a.mp3'}]
transcription:
  speech_models: [universal-3-5-pro, universal-2]
  speaker_labels: true
  webhook_url: https://hooks.example.com/done
  keyterms_prompt: [Acme]
defaults: {model: claude-sonnet-4-6, max_tokens: 500, temperature: 0.2}
tasks:
  plain:
    system: You write minutes.
    prompt: "Summarize: {{ transcript.text }}"
  structured:
    prompt: "Action items: {{ transcript.text }}"
    json_schema: {type: object, required: [items], properties: {items: {type: array}}}
    post_process: [json-repair]
  chat:
    messages:
      - {role: system, content: Be brief.}
      - {role: user, content: "{{ transcript.text }}"}
      - {role: assistant, content: Ready.}
      - {role: user, content: Three bullets.}
  tool:
    prompt: "Record the owner: {{ transcript.text }}"
    tools:
      - type: function
        function:
          name: record_owner
          description: Record who owns the action.
          parameters: {type: object, properties: {owner: {type: string}}}
    tool_choice: auto
  streamed:
    model: gpt-4.1
    stream: true
    prompt: "Headline: {{ transcript.text }}"
  quotes:
    quotes: {count: 2}
"""


@functools.cache
def _spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((VENDOR / name).read_text(encoding="utf-8"))
    return loaded


def _validator(spec: str, component: str) -> Draft202012Validator:
    """A validator for one component, resolving the spec's own ``$ref``s."""
    components = _spec(spec)["components"]
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{component}", "components": components}
    )


def _lemur_task_validator() -> Draft202012Validator:
    """LemurTaskParams as the API documents it: LemurBaseParams plus ``prompt``.

    The vendored spec's LemurTaskParams lists a one-branch allOf that leaves out
    LemurBaseParams' ``context``, which the task endpoint's own page (seeds/000) and the
    API notes (§ LeMUR: "task adds prompt") document; the union is the contract.
    """
    schemas = _spec("openapi.yml")["components"]["schemas"]
    (task,) = schemas["LemurTaskParams"]["allOf"]
    base = schemas["LemurBaseParams"]
    union = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt", "final_model"],
        "properties": {**base["properties"], **task["properties"]},
        "components": _spec("openapi.yml")["components"],
    }
    return Draft202012Validator(union)


def _recipes() -> list[Path]:
    return sorted((ROOT / "recipes").glob("*.yaml"))


def _bodies(recipe: Recipe) -> list[tuple[str, TaskApi, dict[str, Any]]]:
    """Each task's request body, as the runner builds it for a sample item."""
    engine = TemplateEngine(recipe.base_dir)
    item_vars = sample_item_vars(recipe)[0]
    found = []
    for task in recipe.ordered_tasks():
        context = sample_context(recipe, task, item_vars)
        payload = build_payload(
            engine,
            task,
            context,
            transcript_id="6c1b8a4e-1f4e-4c2e-9d2a-3f6f0e8b1a77",
            transcript_text=context["transcript"].text,
        )
        found.append((task.name, task.api, dict(payload.body)))
    return found


def _problems(validator: Draft202012Validator, body: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


@pytest.fixture
def every_feature(tmp_path: Path) -> Recipe:
    path = tmp_path / "features.yaml"
    path.write_text(EVERY_FEATURE)
    return load_recipe(path)


def _check_recipe(recipe: Recipe) -> None:
    options = _validator("openapi.yml", "TranscriptOptionalParams")
    if recipe.local_engine is None:  # a recipe transcribed on this machine sends no options
        assert _problems(options, recipe.transcription_request()) == []
    gateway = _validator("llm-gateway.yml", "LLMGatewayRequest")
    lemur = _lemur_task_validator()
    for name, api, body in _bodies(recipe):
        validator = lemur if api is TaskApi.LEMUR else gateway
        assert _problems(validator, body) == [], f"{recipe.display}: task {name}"


@pytest.mark.parametrize("path", _recipes(), ids=lambda p: p.name)
def test_shipped_recipes_send_what_the_api_accepts(path: Path) -> None:
    _check_recipe(load_recipe(path))


def test_every_gateway_feature_sends_what_the_api_accepts(every_feature: Recipe) -> None:
    _check_recipe(every_feature)


def test_the_check_would_notice_a_request_the_api_refuses() -> None:
    gateway = _validator("llm-gateway.yml", "LLMGatewayRequest")
    tool_without_parameters = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    assert any("parameters" in p for p in _problems(gateway, tool_without_parameters))
    options = _validator("openapi.yml", "TranscriptOptionalParams")
    assert _problems(options, {"speech_model": "best"})  # speech_models is required
