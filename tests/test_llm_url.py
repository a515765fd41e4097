"""One recipe on any server: `run --llm-url` with the model names mapped per server
(`--llm-model`, a provider's `models:` and `model:`), against a fake that, like Ollama
and vLLM, refuses model names it does not have."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, serve_in_thread
from fakelocal import FakeLocalLLM

from runner.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from runner.recipe.llm_server import parse_model_maps

REPO = Path(__file__).resolve().parent.parent
LOCAL_MODEL = "qwen2.5:0.5b"
# The shipped recipes that need nothing of AssemblyAI's LLM Gateway of their own
# (inject_transcript, gateway_post_processing, send_as: prompt), nor LeMUR
# (lemur-locations.yaml): every other one, the first run (Whisper here, its prompts on
# the server) and the graded summary (its judge on the server too) included.
ON_ANY_SERVER = (
    "action-items.yaml",
    "best-quotes.yaml",
    "customer-calls.yaml",
    "exports.yaml",
    "first-run.yaml",
    "graded-summary.yaml",
    "meeting-notes.yaml",
    "summaries.yaml",
)
QUOTES = (
    "The levels outside right now in Baltimore are considered unhealthy.",
    "And in some places, the air quality warnings include the warning to stay inside.",
    "So what is it in this haze that makes it harmful?",
    # first-run.yaml's recording, as Whisper tiny.en hears it
    "The website launch moved to next Thursday because the payment page failed its "
    "security review.",
    "I will also update the release notes and send them to the support team.",
)


def reply_for(body: dict[str, object]) -> str:
    if '"name": "judge"' in json.dumps(body.get("response_format")):  # a judge: passes
        return '{"pass": true, "score": 0.9, "reason": "Says what was said."}'
    if body.get("response_format"):
        return '{"items": [{"owner": "Peter", "task": "send the data"}]}'
    content = json.dumps(body.get("messages"))
    if "best quotes" in content:  # quotes of the transcript it was sent
        return "\n".join(f'"{quote}"' for quote in QUOTES if quote in content)
    return "- one point\n- another"


@pytest.fixture
def ollama() -> Iterator[FakeLocalLLM]:
    fake = FakeLocalLLM("llama-server", known_models={LOCAL_MODEL}, responder=reply_for)
    with serve_in_thread(fake):  # type: ignore[arg-type]
        yield fake


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    return FakeAssemblyAI(api_key=api_key)


@pytest.fixture
def recipes(served: Path) -> Path:
    shutil.copytree(REPO / "recipes", served / "recipes")
    return served


def run_on(url: str, run_cli: RunCli, recipe: str, *more: str) -> tuple[int, str]:
    code, out, err = run_cli(
        "run", f"recipes/{recipe}", "--llm-url", url, "--no-report", "--progress", "plain", *more
    )
    return code, out + err


@pytest.mark.parametrize("recipe", ON_ANY_SERVER)
def test_every_shipped_recipe_runs_on_a_name_checking_server_with_a_model_map(
    recipe: str, recipes: Path, ollama: FakeLocalLLM, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    url = f"{ollama.base_url}/v1"
    code, output = run_on(url, run_cli, recipe, "--llm-model", LOCAL_MODEL)
    assert code == EXIT_OK, output
    assert all(r.body["model"] == LOCAL_MODEL for r in ollama.requests)
    assert fake.gateway.calls == []  # nothing went to the Gateway
    manifest = json.loads((recipes / "out" / "run.json").read_text())
    asked = [t for item in manifest["items"] for t in item["tasks"] if t["asked"]]
    # (a judge's calls are counted on its check, as a task's are on the task)
    judged = [e for t in asked for e in t["expectations"] if e["asked"]]
    assert len(asked) + sum(e["asked"] for e in judged) == len(ollama.requests)
    for record in asked + judged:
        assert (record["provider"], record["model_used"]) == ("llm-url", LOCAL_MODEL)
    # A server of one's own costs nothing known to AssemblyAI: never an unknown cost,
    # a judge's calls included (a transcription by AssemblyAI may be, with no prices).
    unknown = manifest["summary"].get("cost_unknown_for") or []
    assert not [label for label in unknown if label.startswith("llm-url")], unknown


def test_gateway_names_are_refused_by_the_server_and_said_before_the_run(
    recipes: Path, ollama: FakeLocalLLM, run_cli: RunCli
) -> None:
    code, output = run_on(f"{ollama.base_url}/v1", run_cli, "summaries.yaml")
    assert code == EXIT_FAILED
    assert "warning: recipes/summaries.yaml:" in output
    assert "model 'claude-sonnet-4-6' is sent to --llm-url's server under its LLM Gateway" in output
    tasks = json.loads((recipes / "out" / "run.json").read_text())["items"][0]["tasks"]
    assert all("not found, try pulling it first" in t["error"] for t in tasks), tasks


def test_a_fallback_is_asked_on_the_server_under_its_own_mapped_name(
    recipes: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    # action-items.yaml: gpt-4.1, falling back to claude-sonnet-4-6. The server has
    # only the fallback's mapped name, so the primary fails and the fallback answers.
    server = FakeLocalLLM("llama-server", known_models={"llama3.2"}, responder=reply_for)
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        code, output = run_on(
            f"{base}/v1",
            run_cli,
            "action-items.yaml",
            "--llm-model",
            "gpt-4.1=gpt-oss:20b",
            "--llm-model",
            "claude-sonnet-4-6=llama3.2",
        )
    assert code == EXIT_OK, output
    assert [r.body["model"] for r in server.requests] == ["gpt-oss:20b", "llama3.2"]
    (item,) = json.loads((recipes / "out" / "run.json").read_text())["items"]
    (task,) = item["tasks"]
    assert task["fallback_used"] is True
    assert task["model_used"] == "llama3.2"
    assert fake.gateway.calls == []


def test_a_list_of_saved_transcripts_needs_no_assemblyai_key(
    recipes: Path, ollama: FakeLocalLLM, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY")
    code, output = run_on(
        f"{ollama.base_url}/v1", run_cli, "customer-calls.yaml", "--llm-model", LOCAL_MODEL
    )
    assert code == EXIT_OK, output
    assert len(ollama.requests) == 1


PROVIDER_RECIPE = """\
version: 1
name: mapped
inputs: [{transcript_file: recipes/transcripts/wildfires.json}]
providers:
  ollama:
    type: openai-compatible
    base_url: URL
    models: {claude-sonnet-4-6: qwen2.5:0.5b}
    MODEL
tasks:
  one:
    model: ollama/claude-sonnet-4-6
    prompt: "Sum up: {{ transcript.text[:200] }}"
  two:
    model: ollama/gpt-4.1
    prompt: "Headline: {{ transcript.text[:200] }}"
"""


def test_a_provider_maps_names_and_sends_its_default_for_the_rest(
    recipes: Path, ollama: FakeLocalLLM, run_cli: RunCli
) -> None:
    text = PROVIDER_RECIPE.replace("URL", f"{ollama.base_url}/v1")
    (recipes / "mapped.yaml").write_text(text.replace("MODEL", "model: qwen2.5:0.5b"))
    code, out, err = run_cli("run", "mapped.yaml", "--no-report")
    assert code == EXIT_OK, out + err
    assert sorted(r.body["model"] for r in ollama.requests) == [LOCAL_MODEL, LOCAL_MODEL]
    # Without the default, gpt-4.1 reaches the server by its own name, and is refused.
    ollama.requests.clear()
    (recipes / "mapped.yaml").write_text(text.replace("MODEL", ""))
    code, _, _ = run_cli("run", "mapped.yaml", "--no-report", "--no-cache")
    assert code == EXIT_FAILED
    assert sorted(r.body["model"] for r in ollama.requests) == ["gpt-4.1", LOCAL_MODEL]


def test_validate_warns_of_each_gateway_name_that_would_reach_the_server(
    recipes: Path, run_cli: RunCli
) -> None:
    url = "http://127.0.0.1:9/v1"
    code, out, _ = run_cli("validate", "recipes/summaries.yaml", "--llm-url", url)
    assert code == EXIT_OK
    assert out.count("warning:") == 1  # one model, said once at its first task
    assert "summaries.yaml:" in out
    assert "--llm-model claude-sonnet-4-6=NAME" in out
    code, out, _ = run_cli(
        "validate", "recipes/summaries.yaml", "--llm-url", url, "--llm-model", "qwen2.5"
    )
    assert code == EXIT_OK
    assert "warning" not in out
    code, out, _ = run_cli("validate", "recipes/action-items.yaml", "--llm-url", url, "--strict")
    assert code != EXIT_OK  # both of its models, the fallback's too
    assert "'gpt-4.1'" in out
    assert "'claude-sonnet-4-6'" in out
    # A judge's model reaches the server too: named as a task's is.
    code, out, _ = run_cli("validate", "recipes/graded-summary.yaml", "--llm-url", url)
    assert code == EXIT_OK
    assert "--llm-model claude-haiku-4-5-20251001=NAME" in out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["qwen2.5"], ("qwen2.5", {})),
        (["a=b", "c=d:7b"], (None, {"a": "b", "c": "d:7b"})),
        (["qwen2.5", "gpt-4.1=gpt-oss:20b"], ("qwen2.5", {"gpt-4.1": "gpt-oss:20b"})),
    ],
)
def test_model_maps_are_read(values: list[str], expected: tuple[object, object]) -> None:
    assert parse_model_maps(values) == expected


@pytest.mark.parametrize("values", [["a", "b"], ["=b"], ["a="]])
def test_a_bad_model_map_is_a_usage_error(values: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_model_maps(values)


def test_llm_model_without_llm_url_is_a_usage_error(recipes: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("run", "recipes/summaries.yaml", "--llm-model", "qwen2.5")
    assert code == EXIT_USAGE
    assert "give --llm-url too" in err


@pytest.mark.parametrize("url", ["notaurl", "ftp://host/v1", "http://[::1", "http://h:port/v1"])
def test_a_malformed_llm_url_is_a_usage_error(url: str, recipes: Path, run_cli: RunCli) -> None:
    for command in ("validate", "run"):
        code, _, err = run_cli(command, "recipes/summaries.yaml", "--llm-url", url)
        assert code == EXIT_USAGE, err
        assert f"--llm-url {url!r}: give the server's address with http://" in err
