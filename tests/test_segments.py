"""One rule for a transcript's sentences and paragraphs: ``render`` shows what ``run`` sent.

The real command line against the fake AssemblyAI on loopback: a run sends a prompt
built on ``transcript.sentences``, then ``render`` over the same transcript shows it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.store import Store
from runner.transcript.model import Transcript, parse_sentences, sentences_from_words

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"

# Every field of every sentence, so any difference of split shows in the prompt.
PROMPT = (
    "{% for s in transcript.sentences %}"
    "{{ s.start }}-{{ s.end }} {{ s.speaker }} {{ s.confidence }}: {{ s.text }}\n"
    "{% endfor %}{{ transcript.paragraphs | length }} paragraphs"
)


def recipe(inputs: str) -> str:
    return f"""\
version: 1
name: split
inputs:
{inputs}
transcription:
  speaker_labels: true
tasks:
  lines:
    prompt: {json.dumps(PROMPT)}
"""


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = lambda _request: "ok"
    return api


def sent_prompts(fake: FakeAssemblyAI) -> list[str]:
    return [str(call.messages[-1]["content"]) for call in fake.gateway.calls]


def rendered_prompts(run_cli: RunCli, *args: str) -> list[str]:
    code, out, err = run_cli("render", "split.yaml", "--format", "json", "--full", *args)
    assert code == 0, err
    return [
        task["body"]["messages"][-1]["content"]
        for item in json.loads(out)["items"]
        for task in item["tasks"]
    ]


def test_render_shows_the_sentences_a_run_fetched_from_assemblyai(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "split.yaml").write_text(recipe("  - url: https://media.example.com/board.mp3"))
    code, _, err = run_cli("run", "split.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.requests_to("GET /v2/transcript/*/sentences")) == 1
    (sent,) = sent_prompts(fake)
    # AssemblyAI's split is not the one worked out from the words, so a render that
    # derived its own would show another prompt than the one paid for.
    with Store(served / ".transcript-runner") as store:
        (entry,) = list(store.ledger())
        kept = store.transcript_get(entry.transcript_id, "sentences")
        words = json.loads((served / "out/split/board/transcript.json").read_text())["words"]
    assert kept is not None
    derived = sentences_from_words(Transcript.from_api({"words": words, "text": ""}).words)
    assert parse_sentences(kept) != derived

    before = len(fake.history)
    assert rendered_prompts(run_cli) == [sent]
    assert len(fake.history) == before  # render sent nothing
    code, out, _ = run_cli("render", "split.yaml")
    assert "(sentences and paragraphs: AssemblyAI's, kept)" in out
    code, out, _ = run_cli("render", "split.yaml", "--format", "json")
    assert json.loads(out)["items"][0]["segments"] == {"sentences": "kept", "paragraphs": "kept"}


def test_render_and_run_of_a_saved_transcript_send_the_same_prompt(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved").mkdir()
    shutil.copy(WILDFIRES, served / "saved" / "wildfires.json")
    (served / "split.yaml").write_text(recipe("  - transcript_file: saved/wildfires.json"))
    rendered = rendered_prompts(run_cli)
    code, _, err = run_cli("run", "split.yaml", "--progress", "plain")
    assert code == 0, err
    assert sent_prompts(fake) == rendered
    assert fake.requests_to("GET /v2/transcript/*/sentences") == []  # a saved file: none
    assert rendered_prompts(run_cli) == rendered
