"""Nothing paid before a check that could fail: what a reply needs on this machine (the
embedding model of `match: semantic`) is found by `validate` and loaded by `run` before
its first request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK
from runner.transcript.embedding import PACKAGED_FILES

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "recipes" / "transcripts" / "wildfires.json"
BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
VULNERABLE = "The youngest children and the elderly are the most vulnerable to the smoke"

# Seed 003 (the best-quotes guide): its model, its max_tokens, its sliding windows of
# 5 sentences sharing 2, its embedding model named as the guide names it.
SEED_003 = """\
version: 1
name: best
inputs: [{transcript_file: saved.json}]
tasks:
  quotes:
    model: claude-sonnet-4-5-20250929
    max_tokens: 2000
    quotes:
      count: 2
      question: What are the {{ 2 }} best quotes from this video?
      match: semantic
      window: 5
      overlap: 2
      allow_paraphrases: true
"""


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = lambda request: f'"{BALTIMORE}"\n"{VULNERABLE}"'
    return api


def write(folder: Path, recipe: str) -> None:
    shutil.copy(WILDFIRES, folder / "saved.json")
    (folder / "recipe.yaml").write_text(recipe)


def test_a_model_that_is_not_here_fails_validate_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    write(tmp_path, SEED_003 + "      model: multi-qa-mpnet-base-dot-v1\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("validate", "recipe.yaml")
    assert code == EXIT_INVALID_RECIPE
    assert out.startswith("recipe.yaml:15:14: $.tasks.quotes.quotes.model: the embedding model ")
    assert "'multi-qa-mpnet-base-dot-v1' is not on this machine" in out


def test_a_model_that_is_not_here_sends_nothing_at_run(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    write(served, SEED_003 + "      model: multi-qa-mpnet-base-dot-v1\n")
    code, _, err = run_cli("run", "recipe.yaml", "--no-report")
    assert code == EXIT_INVALID_RECIPE
    assert "$.tasks.quotes.quotes.model" in err
    assert "the run stopped before sending anything" in err
    assert fake.gateway.calls == []
    assert not (served / "out" / "run.json").exists()


def test_a_folder_that_holds_no_model_is_refused_by_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    (tmp_path / "mpnet").mkdir()
    (tmp_path / "mpnet" / "model.onnx").write_bytes(b"not a model")
    write(tmp_path, SEED_003 + "      model: mpnet\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("validate", "recipe.yaml")
    assert code == EXIT_INVALID_RECIPE
    assert "no tokenizer.json beside the embedding model" in out


@pytest.mark.slow  # a real embedding model
def test_a_folder_of_ones_own_passes_validate_and_a_broken_one_fails_run_before_sending(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    # A copy of the shipped model as a folder of one's own: how the guide's mpnet is given.
    shutil.copytree(PACKAGED_FILES, served / "own")
    write(served, SEED_003 + "      model: own\n")
    assert run_cli("validate", "recipe.yaml").exit_code == EXIT_OK
    (served / "own" / "model.onnx").write_bytes(b"damaged")
    code, _, err = run_cli("run", "recipe.yaml", "--no-report")
    assert code == EXIT_INVALID_RECIPE
    assert "cannot load the embedding model" in err
    assert fake.gateway.calls == []


@pytest.mark.slow  # a real embedding model
def test_seed_003_runs_offline_with_the_shipped_model(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write(served, SEED_003)
    code, _, err = run_cli("run", "recipe.yaml", "--no-report")
    assert code == EXIT_OK, err
    (call,) = fake.gateway.calls
    # The guide's request, field by field.
    assert call.request["model"] == "claude-sonnet-4-5-20250929"
    assert call.request["max_tokens"] == 2000
    (message,) = call.request["messages"]
    assert message["role"] == "user"
    assert "What are the 2 best quotes from this video?" in message["content"]
    assert "Smoke from hundreds of wildfires" in message["content"]
    found = json.loads((served / "out" / "best" / "saved" / "quotes.json").read_text())
    assert [q["verdict"] for q in found] == ["verbatim", "paraphrase"]
    assert found[1]["similarity"] >= 0.6
