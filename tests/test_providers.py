"""LLM tasks on OpenAI-compatible servers (`providers:`, `--llm-url`), against a fake
taught by recorded replies of real llama-server and llama-cpp-python servers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, serve_in_thread
from fakelocal import FakeLocalLLM

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
ASSEMBLYAI_KEY = "assemblyai-key-never-sent-to-others"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def llama_server() -> Iterator[FakeLocalLLM]:
    fake = FakeLocalLLM("llama-server")
    with serve_in_thread(fake):  # type: ignore[arg-type]
        yield fake


def test_a_gateway_recipe_runs_unchanged_on_a_local_server_with_one_override(
    folder: Path, llama_server: FakeLocalLLM, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", ASSEMBLYAI_KEY)
    url = f"{llama_server.base_url}/v1"
    code, _, err = run_cli("run", "recipes/summaries.yaml", "--llm-url", url, "--progress", "plain")
    assert code == 0, err
    assert len(llama_server.requests) == 5  # every task of the recipe
    for request in llama_server.requests:
        assert request.authorization is None  # no key configured: none sent
        assert ASSEMBLYAI_KEY not in json.dumps(request.headers)
        for gateway_only in ("transcript_id", "fallbacks", "post_processing_steps", "prompt"):
            assert gateway_only not in request.body
        assert request.body["model"] == "claude-sonnet-4-6"  # the recipe's, unchanged
    manifest = json.loads((folder / "out" / "run.json").read_text())
    tasks = manifest["items"][0]["tasks"]
    assert all(t["input_tokens"] > 0 and t["output_tokens"] > 0 for t in tasks)  # prompt_tokens
    recorded = llama_server.recording["bullets"]["content"]
    summary = folder / "out" / "summaries" / "wildfires" / "bullets.md"
    assert summary.read_text().strip() == recorded.strip()


PROVIDERS_RECIPE = """\
version: 1
name: local
inputs: [{transcript_file: recipes/transcripts/wildfires.json}]
providers:
  box:
    type: openai-compatible
    base_url: URL
    api_key_env: TRANSCRIPT_RUNNER_BOX_KEY
    headers: {X-Team: research}
    structured_output: STRUCTURED
    extra_body: {top_k: 40}
tasks:
  facts:
    model: box/smollm2-135m
    prompt: "Facts as JSON: {{ transcript.text[:400] }}"
    json_schema:
      type: object
      required: [topic]
      properties: {topic: {type: string}}
"""


def write_providers_recipe(folder: Path, url: str, structured: str) -> Path:
    recipe = folder / "local.yaml"
    recipe.write_text(PROVIDERS_RECIPE.replace("URL", url).replace("STRUCTURED", structured))
    return recipe


def test_a_provider_gets_bearer_auth_its_headers_and_the_schema_in_its_form(
    folder: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSCRIPT_RUNNER_BOX_KEY", "box-secret")
    fake = FakeLocalLLM("llama-cpp-python", key="box-secret")
    fake.responder = lambda body: '{"topic": "wildfire smoke"}'
    with serve_in_thread(fake) as base:  # type: ignore[arg-type]
        write_providers_recipe(folder, f"{base}/v1", "json_object")
        code, _, err = run_cli("run", "local.yaml", "--progress", "plain")
    assert code == 0, err
    (request,) = fake.requests
    assert request.authorization == "Bearer box-secret"
    assert request.headers["X-Team"] == "research"
    assert request.body["model"] == "smollm2-135m"
    assert request.body["top_k"] == 40
    assert request.body["response_format"] == {
        "type": "json_object",
        "schema": {
            "type": "object",
            "required": ["topic"],
            "properties": {"topic": {"type": "string"}},
        },
    }
    facts = json.loads((folder / "out" / "local" / "wildfires" / "facts.json").read_text())
    assert facts == {"topic": "wildfire smoke"}


def test_llama_cpp_pythons_500_for_json_schema_fails_only_the_task(
    folder: Path, run_cli: RunCli
) -> None:
    fake = FakeLocalLLM("llama-cpp-python")
    with serve_in_thread(fake) as base:  # type: ignore[arg-type]
        write_providers_recipe(folder, f"{base}/v1", "json_schema")
        code, _, err = run_cli("run", "local.yaml", "--progress", "plain")
    assert code == 1
    manifest = json.loads((folder / "out" / "run.json").read_text())
    (task,) = manifest["items"][0]["tasks"]
    assert task["status"] == "failed"
    assert "(500)" in task["error"]
    assert "Input should be 'text' or 'json_object'" in task["error"]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("    inject_transcript: true\n", "inject_transcript"),
        ("    gateway_post_processing: [json-repair]\n", "gateway_post_processing"),
        ("    fallback_config: {depth: 1}\n", "fallback_config"),
    ],
)
def test_validate_refuses_gateway_features_on_a_provider(
    folder: Path, run_cli: RunCli, extra: str, key: str
) -> None:
    recipe = write_providers_recipe(folder, "http://127.0.0.1:9/v1", "json_schema")
    text = recipe.read_text().replace(
        "    model: box/smollm2-135m\n", f"    model: box/smollm2-135m\n{extra}"
    )
    if key == "inject_transcript":
        text = text.replace("{{ transcript.text[:400] }}", "{{ gateway_transcript }}")
    recipe.write_text(text)
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert (
        f"local.yaml:15:5: $.tasks.facts.{key}: '{key}' only works on AssemblyAI's LLM Gateway"
        in out
    )
    assert "task 'facts' runs on provider 'box'" in out


def test_llm_url_refuses_a_task_that_needs_the_gateway(folder: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli(
        "run", "recipes/meeting-notes.yaml", "--llm-url", "http://127.0.0.1:9/v1", "--dry-run"
    )
    if code == 0:  # the shipped recipe uses no Gateway-only feature: make one that does
        recipe = folder / "inject.yaml"
        recipe.write_text(
            "version: 1\nname: inject\n"
            "inputs: [{transcript_file: recipes/transcripts/wildfires.json}]\n"
            "tasks:\n  s:\n    prompt: 'Sum up {{ gateway_transcript }}'\n"
            "    inject_transcript: true\n"
        )
        code, _, err = run_cli("run", str(recipe), "--llm-url", "http://127.0.0.1:9/v1")
    assert code == 2
    assert "uses `inject_transcript`, which only AssemblyAI's LLM Gateway has" in err


SPEECH_RECIPE = """\
version: 1
name: speech
inputs: [{file: call.wav}]
transcription:
  engine: openai-compatible
  base_url: URL
  model: whisper-1
  language: en
  api_key_env: TRANSCRIPT_RUNNER_SPEECH_KEY
tasks:
  subtitles: {export: srt}
"""
SAID = [("Hello", 0.25, 0.6), ("world,", 0.6, 1.1), ("again.", 1.3, 1.9)]


@pytest.mark.parametrize("with_words", [True, False])
def test_a_speech_server_transcribes_with_word_times(
    folder: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, with_words: bool
) -> None:
    monkeypatch.setenv("TRANSCRIPT_RUNNER_SPEECH_KEY", "speech-secret")
    shutil.copy(REPO / "tests" / "fixtures" / "audio" / "fox.wav", folder / "call.wav")
    fake = FakeLocalLLM(key="speech-secret", speech=SAID, speech_words=with_words)
    with serve_in_thread(fake) as base:  # type: ignore[arg-type]
        (folder / "speech.yaml").write_text(SPEECH_RECIPE.replace("URL", f"{base}/v1"))
        code, _, err = run_cli("run", "speech.yaml", "--progress", "plain")
        assert code == 0, err
        code, _, err = run_cli("run", "speech.yaml", "--progress", "plain")  # the ledger
        assert code == 0, err
    (form,) = fake.speech_forms  # transcribed once
    assert form["model"] == ["whisper-1"]
    assert form["response_format"] == ["verbose_json"]
    assert "word" in form["timestamp_granularities[]"]
    assert form["language"] == ["en"]
    item = folder / "out" / "speech" / "call"
    transcript = json.loads((item / "transcript.json").read_text())
    assert transcript["text"] == "Hello world, again."
    assert transcript["language_code"] == "en"
    starts = [(w["text"], w["start"], w["end"]) for w in transcript["words"]]
    if with_words:
        assert transcript["word_times"] == "server"
        assert starts == [("Hello", 250, 600), ("world,", 600, 1100), ("again.", 1300, 1900)]
    else:  # faster-whisper-server's segments only: spread evenly over the segment
        assert transcript["word_times"] == "spread over segments"
        assert starts == [("Hello", 250, 800), ("world,", 800, 1350), ("again.", 1350, 1900)]
    assert (item / "subtitles.srt").read_text().startswith("1\n00:00:00,250 --> ")


GATEWAY_WITH_LOCAL_FALLBACK = """\
version: 1
name: fallback
inputs: [{transcript_file: recipes/transcripts/wildfires.json}]
providers:
  box: {type: openai-compatible, base_url: URL}
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text[:300] }}"
    fallbacks: [{model: gemini-2.5-flash}, {model: box/smollm2, max_tokens: 64}]
"""


def test_a_provider_fallback_is_asked_when_the_gateway_fails(
    folder: Path,
    fake: FakeAssemblyAI,
    api_key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fakeapi import status

    local = FakeLocalLLM("llama-server")
    local.responder = lambda body: "- from the local model"
    fake.faults.add("POST /v1/chat/completions", status(400), times=None)
    with serve_in_thread(fake) as gateway, serve_in_thread(local) as base:  # type: ignore[arg-type]
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", api_key)
        monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", f"{gateway}/v1")
        (folder / "fallback.yaml").write_text(
            GATEWAY_WITH_LOCAL_FALLBACK.replace("URL", f"{base}/v1")
        )
        code, _, err = run_cli("run", "fallback.yaml", "--progress", "plain")
    assert code == 0, err
    sent = [r for r in fake.history if r.path == "/v1/chat/completions"]
    assert sent
    assert all(
        f["model"] == "gemini-2.5-flash" for r in sent for f in (r.json or {}).get("fallbacks", [])
    )  # the Gateway is told only of the fallback it can reach
    (request,) = local.requests
    assert (request.body["model"], request.body["max_tokens"]) == ("smollm2", 64)
    manifest = json.loads((folder / "out" / "run.json").read_text())
    (task,) = manifest["items"][0]["tasks"]
    assert (task["status"], task["fallback_used"], task["model_used"]) == ("ok", True, "smollm2")


MAPPING_FORM = """\
version: 1
name: named
inputs: [{transcript_file: recipes/transcripts/wildfires.json}]
providers:
  meta-llama:
    type: openai-compatible
    base_url: URL
tasks:
  summary:
    model: {provider: meta-llama, name: meta-llama/Llama-3.2-3B-Instruct}
    prompt: "Summarize: {{ transcript.text[:300] }}"
  headline:
    model: {provider: assemblyai, name: meta-llama/gateway-model}
    prompt: "Headline: {{ transcript.text[:300] }}"
    fallbacks: [{model: {provider: meta-llama, name: org/small}}]
"""


def test_the_mapping_form_names_the_provider_of_a_model_with_a_slash(
    folder: Path,
    fake: FakeAssemblyAI,
    api_key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Even where the name's first part is a provider's name, the mapping says which."""
    local = FakeLocalLLM("llama-server")
    local.responder = lambda body: "- from the local model"
    with serve_in_thread(fake) as gateway, serve_in_thread(local) as base:  # type: ignore[arg-type]
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", api_key)
        monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", f"{gateway}/v1")
        (folder / "named.yaml").write_text(MAPPING_FORM.replace("URL", f"{base}/v1"))
        code, _, err = run_cli("run", "named.yaml", "--progress", "plain")
    assert code == 0, err
    (request,) = local.requests
    assert request.body["model"] == "meta-llama/Llama-3.2-3B-Instruct"  # the whole name
    (sent,) = [r.json for r in fake.history if r.path == "/v1/chat/completions"]
    assert sent is not None
    assert sent["model"] == "meta-llama/gateway-model"
    assert "fallbacks" not in sent  # the provider's fallback is ours to ask, not the Gateway's


def test_two_recipes_may_give_one_provider_name_to_different_servers(
    folder: Path, run_cli: RunCli
) -> None:
    first, second = FakeLocalLLM("llama-server"), FakeLocalLLM("llama-server")
    with serve_in_thread(first) as one, serve_in_thread(second) as two:  # type: ignore[arg-type]
        for name, base in (("a", one), ("b", two)):
            text = write_providers_recipe(folder, f"{base}/v1", "none").read_text()
            text = text.replace("name: local", f"name: {name}")
            text = text.replace("    api_key_env: TRANSCRIPT_RUNNER_BOX_KEY\n", "")
            (folder / f"{name}.yaml").write_text(text)
        (folder / "local.yaml").unlink()
        code, _, err = run_cli("run", "a.yaml", "b.yaml", "--progress", "plain")
    assert code == 1, err  # the recorded reply is no JSON: each task fails, on its own server
    assert (len(first.requests), len(second.requests)) == (1, 1)


@pytest.mark.parametrize(
    "reply",
    [
        {"text": "hi", "words": [{"word": "hi"}]},
        {"text": "hi", "words": [{"word": "hi", "start": None, "end": "x"}]},
        {"text": "hi", "segments": [{"text": "hi", "start": "x", "end": 1}]},
        {"text": "hi", "duration": "long", "words": "none"},
    ],
)
def test_a_speech_reply_with_odd_fields_keeps_what_it_can(reply: dict[str, object]) -> None:
    from runner.api.speech import shaped

    transcript = shaped(reply, {}, "audio")
    assert transcript["text"] == "hi"
    assert transcript["words"] == []
    assert transcript["word_times"] == "none"


def test_a_local_server_costs_what_its_provider_entry_says_never_an_unknown_gateway_cost(
    folder: Path, llama_server: FakeLocalLLM, run_cli: RunCli
) -> None:
    url = f"{llama_server.base_url}/v1"
    code, _, err = run_cli("run", "recipes/summaries.yaml", "--llm-url", url, "--progress", "plain")
    assert code == 0, err
    assert "  cost: $0.00 (transcription $0.00, LLM $0.00)" in err  # no price table: free
    assert "unknown" not in err.split("cost:")[1].splitlines()[0]
    tasks = json.loads((folder / "out" / "run.json").read_text())["items"][0]["tasks"]
    assert {t["cost_usd"] for t in tasks} == {0.0}
    # A table that prices the server prices its calls, by the provider's own entry.
    (folder / "prices.yaml").write_text(
        "llm_per_million_tokens:\n  llm-url/*: {input: 1.0, output: 2.0}\n"
    )
    code, _, err = run_cli(
        "run",
        "recipes/summaries.yaml",
        "--llm-url",
        url,
        "--no-cache",
        "--prices",
        "prices.yaml",
        "--progress",
        "plain",
    )
    assert code == 0, err
    tasks = json.loads((folder / "out" / "run.json").read_text())["items"][0]["tasks"]
    for task in tasks:
        expected = (task["input_tokens"] * 1.0 + task["output_tokens"] * 2.0) / 1_000_000
        assert task["cost_usd"] == pytest.approx(expected)
