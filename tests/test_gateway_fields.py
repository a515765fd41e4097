"""Every field of the Gateway's chat completions (seeds/004) and LeMUR's input_text,
from recipe keys to the request the fake receives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"

RECIPE = """\
version: 1
name: fields
inputs:
  - url: https://media.example.com/board-meeting.mp3
transcription: {speaker_labels: true}
tasks:
  plain:
    send_as: prompt
    prompt: "Title for: {{ transcript.text[:300] }}"
    max_tokens: 50
    temperature: 0.3
  structured:
    system: You extract facts.
    prompt: "Facts: {{ gateway_transcript }}"
    inject_transcript: true
    json_schema:
      type: object
      required: [facts]
      properties: {facts: {type: array, items: {type: string}}}
    strict: true
    gateway_post_processing: [json-repair]
    fallbacks:
      - model: gemini-2.5-flash
        temperature: 0.2
        max_tokens: 400
        system: You extract facts, briefly.
        prompt: "Three facts, as JSON: {{ transcript.text[:200] }}"
        tools: []
    fallback_config: {depth: 1, retry: true}
  with_tools:
    model: gpt-4.1
    prompt: "Who spoke? {{ transcript.text[:100] }}"
    tools:
      - type: function
        function:
          name: record_speaker
          parameters: {type: object, properties: {name: {type: string}}}
    tool_choice: auto
    stream: true
  lemur_text:
    api: lemur
    prompt: Who is the most concerned speaker?
    input_text: "{% for u in transcript.utterances %}{{ u.speaker }}: {{ u.text }}\\n{% endfor %}"
    temperature: 0.5
"""


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)

    def reply(request: dict[str, Any]) -> str:
        if "response_format" in request:
            return json.dumps({"facts": ["smoke"]})
        return "A reply"

    api.gateway.responder = reply
    return api


def sent_with(fake: FakeAssemblyAI, start: str) -> dict[str, Any]:
    """The one request whose prompt (or last message) starts with ``start``."""
    (body,) = [
        call.request
        for call in fake.gateway.calls
        if str(call.request.get("prompt") or call.request["messages"][-1]["content"]).startswith(
            start
        )
    ]
    return body


def test_each_seed_004_field_reaches_the_gateway(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "recipe.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    plain = sent_with(fake, "Title for")
    assert "messages" not in plain
    assert plain["prompt"].startswith("Title for: Smoke from hundreds")
    assert (plain["max_tokens"], plain["temperature"]) == (50, 0.3)

    structured = sent_with(fake, "Facts")
    assert structured["transcript_id"]
    assert structured["messages"][1]["content"] == "Facts: {{ transcript }}"
    assert structured["response_format"]["json_schema"]["strict"] is True
    assert structured["post_processing_steps"] == [{"type": "json-repair"}]
    assert structured["fallback_config"] == {"depth": 1, "retry": True}
    (fallback,) = structured["fallbacks"]
    assert fallback["model"] == "gemini-2.5-flash"
    assert (fallback["temperature"], fallback["max_tokens"], fallback["tools"]) == (0.2, 400, [])
    assert fallback["messages"][0] == {"role": "system", "content": "You extract facts, briefly."}
    assert fallback["messages"][1]["content"].startswith("Three facts, as JSON: Smoke")

    tools = sent_with(fake, "Who spoke?")
    assert tools["model"] == "gpt-4.1"
    assert tools["tools"][0]["function"]["name"] == "record_speaker"
    assert (tools["tool_choice"], tools["stream"]) == ("auto", True)

    (lemur,) = fake.lemur.calls
    assert "transcript_ids" not in lemur.request
    assert lemur.request["input_text"].startswith("A: ")
    assert lemur.request["temperature"] == 0.5


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("{prompt: hi there, strict: true}", "strict applies to a json_schema"),
        (
            "{prompt: hi there, system: Be brief., send_as: prompt}",
            "`send_as: prompt` sends one user prompt",
        ),
        (
            "{messages: [{role: user, content: hi there}], send_as: prompt}",
            "this task has `messages`",
        ),
        ("{prompt: hi there, input_text: some text}", "'input_text' only applies to LeMUR tasks"),
        (
            "{api: lemur, prompt: hi there, strict: true}",
            "'strict' is an LLM Gateway option; LeMUR tasks (api: lemur) do not support it",
        ),
    ],
)
def test_validate_locates_fields_that_do_not_apply(
    tmp_path: Path, run_cli: RunCli, task: str, message: str
) -> None:
    shutil.copy(WILDFIRES, tmp_path / "t.json")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\nname: x\ninputs: [{{transcript_file: t.json}}]\ntasks:\n  t: {task}\n"
    )
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert message in out + err
    assert "recipe.yaml:5:" in out + err
