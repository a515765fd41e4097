"""Seed 004: a fallback "can optionally override any field from the original request".
Here one overrides `json_schema` and `messages`; replayed against the fake Gateway,
field by field, with the primary model failing so that the fallback answers, and the
reply finished by the fallback's own schema. The runner's own fallbacks (on a
provider, or on --llm-url's server) take the same fields."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, serve_in_thread, status
from fakelocal import FakeLocalLLM

from runner.errors import EXIT_OK

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"

RECIPE = """\
version: 1
name: seed004
inputs: [{transcript_file: saved.json}]
tasks:
  facts:
    model: claude-sonnet-4-5-20250929
    max_tokens: 1000
    temperature: 0
    system: You extract facts.
    prompt: "Facts of: {{ transcript.text[:120] }}"
    json_schema:
      type: object
      required: [facts]
      properties: {facts: {type: array, items: {type: string}}}
    post_process: [json-schema]
    fallbacks:
      - model: gemini-2.5-flash
        max_tokens: 400
        messages:
          - {role: system, content: Answer in one word.}
          - {role: user, content: "The topic of: {{ transcript.text[:60] }}"}
        json_schema:
          type: object
          required: [topic]
          properties: {topic: {type: string}}
        post_process: [json-repair, json-schema]
"""
TOPIC = {"topic": "wildfires"}


def reply_for(request: dict[str, Any]) -> str:
    schema = request["response_format"]["json_schema"]["schema"]
    return '{"topic": "wildfires",}' if "topic" in schema["properties"] else '{"facts": []}'


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = reply_for
    return api


def test_a_fallback_overriding_json_schema_and_messages_reaches_the_gateway_field_by_field(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    primary = "claude-sonnet-4-5-20250929"
    fake.faults.add("POST /v1/chat/completions", status(500), model=primary, times=None)
    code, _, err = run_cli("run", "recipe.yaml", "--no-report")
    assert code == EXIT_OK, err
    (call,) = fake.gateway.calls
    text = json.loads(WILDFIRES.read_text())["text"]
    sent = call.request
    assert sent["model"] == primary
    assert sent["messages"] == [
        {"role": "system", "content": "You extract facts."},
        {"role": "user", "content": f"Facts of: {text[:120]}"},
    ]
    assert sent["response_format"]["json_schema"]["name"] == "facts"
    assert sent["fallbacks"] == [
        {
            "model": "gemini-2.5-flash",
            "max_tokens": 400,
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": f"The topic of: {text[:60]}"},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "facts",
                    "schema": {
                        "type": "object",
                        "required": ["topic"],
                        "properties": {"topic": {"type": "string"}},
                    },
                },
            },
        }
    ]
    # What the fallback model saw: its own messages and schema, the rest inherited.
    assert call.fallback_used
    assert call.messages == sent["fallbacks"][0]["messages"]
    # Finished by the answering model's settings: its json-repair, then its schema.
    output = served / "out" / "seed004" / "saved" / "facts.json"
    assert json.loads(output.read_text()) == TOPIC
    (item,) = json.loads((served / "out" / "run.json").read_text())["items"]
    (task,) = item["tasks"]
    assert (task["model_used"], task["fallback_used"]) == ("gemini-2.5-flash", True)
    assert task["post_process"] == ["json-repair", "json-schema"]
    # The answer's status fields and request id, per request.
    assert (task["http_status_code"], task["llm_status_code"]) == (200, 200)
    assert isinstance(task["request_id"], str)
    assert task["request_id"]


def test_render_shows_the_fallbacks_fields(served: Path, run_cli: RunCli) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    code, out, err = run_cli("render", "recipe.yaml", "--format", "json")
    assert code == EXIT_OK, err
    (fallback,) = json.loads(out)["items"][0]["tasks"][0]["body"]["fallbacks"]
    assert sorted(fallback) == ["max_tokens", "messages", "model", "response_format"]


def test_the_runners_own_fallback_asks_with_its_own_fields_on_the_server(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    server = FakeLocalLLM("llama-server", known_models={"qwen2.5"})
    server.responder = lambda body: reply_for(body)
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        code, _, err = run_cli(
            "run",
            "recipe.yaml",
            "--no-report",
            "--llm-url",
            f"{base}/v1",
            "--llm-model",
            "gemini-2.5-flash=qwen2.5",
        )
    assert code == EXIT_OK, err
    first, second = (r.body for r in server.requests)
    assert first["model"] == "claude-sonnet-4-5-20250929"  # refused: not on the server
    assert second["model"] == "qwen2.5"
    assert second["max_tokens"] == 400
    assert second["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert second["response_format"]["json_schema"]["schema"]["required"] == ["topic"]
    output = served / "out" / "seed004" / "saved" / "facts.json"
    assert json.loads(output.read_text()) == TOPIC
    assert fake.gateway.calls == []
