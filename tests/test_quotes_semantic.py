"""``match: semantic``: the guide's method, with a real embedding model.

all-MiniLM-L6-v2 is the semantic extra's own model (runner/transcript/minilm/, on ONNX
Runtime): HF_HUB_OFFLINE is set, nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.transcript.embedding import PACKAGED, PACKAGED_FILES, embedder
from runner.transcript.model import load_saved, sentences_from_words
from runner.transcript.quotes import NOT_FOUND, REWORDED, VERBATIM, WordIndex, align
from runner.transcript.semantic import SemanticUnavailable, match_semantic

pytestmark = pytest.mark.slow  # a real embedding model

os.environ["HF_HUB_OFFLINE"] = "1"
MODEL = PACKAGED

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
TRANSCRIPT = load_saved(WILDFIRES)
SENTENCES = sentences_from_words(TRANSCRIPT.words)

BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
# Said as "It's the youngest. So children, obviously, ... the elderly ...": too reworded
# for the words method, close in meaning to its window.
VULNERABLE = "The youngest children and the elderly are the most vulnerable to the smoke"
INVENTED = "Canada has promised to send more firefighters to the border next week."


def semantic(reply: str, count: int = 3) -> list[dict[str, object]]:
    quotes = match_semantic(
        reply, SENTENCES, TRANSCRIPT.words, count=count, window=5, overlap=2, model=MODEL
    )
    return [q.as_json() for q in quotes]


def test_a_paraphrase_the_words_miss_is_found_by_meaning() -> None:
    assert align(VULNERABLE, WordIndex.of(TRANSCRIPT.words)).verdict == NOT_FOUND
    (found,) = semantic(f'"{VULNERABLE}"')
    assert found["verdict"] == REWORDED
    assert isinstance(found["similarity"], float)
    assert found["similarity"] >= 0.6
    assert "youngest" in str(found["text"])
    # The window's times: it holds the sentence that says it (137.6 s to 149.5 s).
    assert isinstance(found["start"], int)
    assert isinstance(found["end"], int)
    assert found["start"] <= 137_610
    assert found["end"] >= 149_450


def test_a_verbatim_quote_keeps_its_own_words_times() -> None:
    (found,) = semantic(f'"{BALTIMORE}"')
    assert (found["verdict"], found["start"], found["end"]) == (VERBATIM, 63_350, 66_750)


def test_an_invention_is_not_found() -> None:
    (found,) = semantic(f'"{INVENTED}"')
    assert found["verdict"] == NOT_FOUND
    assert found["start"] is None


def test_a_model_that_is_not_there_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(SemanticUnavailable, match="nothing is downloaded during a run"):
        embedder(str(tmp_path / "no-such-model"))


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = lambda request: f'"{BALTIMORE}"\n"{VULNERABLE}"'
    return api


def test_a_semantic_quotes_task_runs_offline_from_a_model_folder(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved.json").write_text(WILDFIRES.read_text())
    (served / "recipe.yaml").write_text(
        "version: 1\nname: q\ninputs: [{transcript_file: saved.json}]\ntasks:\n"
        "  best:\n    quotes:\n      count: 2\n      match: semantic\n"
        f"      allow_paraphrases: true\n      model: {PACKAGED_FILES}\n"
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    output = json.loads((served / "out" / "q" / "saved" / "best.json").read_text())
    assert [q["verdict"] for q in output] == [VERBATIM, REWORDED]
