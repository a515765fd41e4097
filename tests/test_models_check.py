"""Model names against the Gateway's catalog (``validate --online``, ``plan``), and what
the EU region offers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"

RECIPE = """\
version: 1
name: models
inputs: [{transcript_file: t.json}]
tasks:
  summary:
    model: claude-sonet-4-6
    prompt: "Summarize: {{ transcript.text }}"
  openai:
    model: gpt-4.1
    prompt: "Topics: {{ transcript.text }}"
    fallbacks: [{model: gemini-2.5-flash}, {model: gemini-9}]
  ok:
    prompt: "Title: {{ transcript.text }}"
"""


@pytest.fixture
def recipe(served: Path) -> Path:
    shutil.copy(WILDFIRES, served / "t.json")
    path = served / "models.yaml"
    path.write_text(RECIPE)
    return path


def test_online_finds_unknown_models_with_a_suggestion(
    recipe: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, out, err = run_cli("validate", "--online", str(recipe))
    assert code == 3, out + err
    assert (
        "models.yaml:6:12: $.tasks.summary.model: model 'claude-sonet-4-6' is not in the LLM "
        "Gateway's model list; did you mean 'claude-sonnet-4-6'?"
    ) in out
    assert "$.tasks.openai.fallbacks[1].model: model 'gemini-9' is not in the LLM" in out
    assert "gemini-2.5-flash" not in out  # listed: fine
    assert "tasks.ok" not in out  # the default model is listed
    assert fake.gateway.catalog_requests == 1


def test_the_catalog_is_kept_a_day_and_used_by_plan(
    recipe: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    run_cli("validate", "--online", str(recipe))
    run_cli("validate", "--online", str(recipe))
    assert fake.gateway.catalog_requests == 1  # the second read the kept one
    code, _, err = run_cli("plan", str(recipe))
    assert code == 0
    assert (
        "models.yaml:6:12: warning: $.tasks.summary.model: model 'claude-sonet-4-6' is not in "
        "the LLM Gateway's model list; did you mean 'claude-sonnet-4-6'? (model list of less "
        "than an hour ago)"
    ) in err
    assert fake.gateway.catalog_requests == 1  # plan never fetches


def test_online_checks_the_region(recipe: Path, fake: FakeAssemblyAI, run_cli: RunCli) -> None:
    code, out, _ = run_cli("validate", "--online", "--region", "eu", str(recipe))
    assert code == 3
    assert "model 'gpt-4.1' is offered in us only, not eu; choose a model offered in eu" in out


def test_without_a_catalog_the_eu_region_warns_from_the_docs(
    tmp_path: Path, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, tmp_path / "t.json")
    shutil.copy(REPO / "recipes" / "lemur-locations.yaml", tmp_path / "lemur.yaml")
    (tmp_path / "transcripts").mkdir()
    shutil.copy(WILDFIRES, tmp_path / "transcripts" / "wildfires.json")
    (tmp_path / "models.yaml").write_text(RECIPE)
    code, out, _ = run_cli("validate", "--region", "eu", str(tmp_path))
    assert code == 3
    assert "LeMUR is not offered in AssemblyAI's EU region" in out
    assert (
        "models.yaml:9:12: warning: $.tasks.openai.model: model 'gpt-4.1' is an OpenAI model, "
        "which AssemblyAI offers in the US region only; choose a Claude or Gemini model for the EU"
    ) in out


def test_an_unreachable_gateway_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(WILDFIRES, tmp_path / "t.json")
    (tmp_path / "models.yaml").write_text(RECIPE)
    monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("validate", "--online", "models.yaml")
    assert code == 2
    assert (
        "--online: cannot read the LLM Gateway's model list at http://127.0.0.1:9/v1/models" in err
    )
    assert "Traceback" not in err


def test_plan_online_prices_the_models_the_gateway_list_prices(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "t.json")
    (served / "priced.yaml").write_text(
        "version: 1\nname: priced\ninputs: [{transcript_file: t.json}]\ntasks:\n"
        "  summary: {model: claude-sonnet-4-6, prompt: 'Sum up: {{ transcript.text }}'}\n"
        "  topics: {model: gpt-4.1, prompt: 'Topics: {{ transcript.text }}'}\n"
    )
    fake.gateway.pricing["claude-sonnet-4-6"] = {"prompt": "0.000003", "completion": "0.000015"}
    fake.gateway.pricing["gpt-4.1"] = {"prompt": "a lot"}  # no price: never guessed
    code, out, err = run_cli("plan", "--online", "--format", "json", "priced.yaml")
    assert code == 0, err
    assert fake.gateway.catalog_requests == 1
    costs = json.loads(out)["costs"]
    assert costs["unpriced_models"] == ["gpt-4.1"]
    code, out, _ = run_cli("plan", "--format", "json", "priced.yaml")  # the kept list
    assert json.loads(out)["costs"]["unpriced_models"] == ["gpt-4.1"]
    assert fake.gateway.catalog_requests == 1
    # Priced at $3 per million input tokens: the summary's known prompt.
    from runner.checks.models import listed_price

    price = listed_price({"prompt": "0.000003", "completion": "0.000015"})
    assert price is not None
    assert (price.input, price.output) == (3.0, 15.0)
