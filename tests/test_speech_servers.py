"""Speech servers (`transcription: {engine: openai-compatible}`) under the shared policy:
one client per server for the whole run, its `speech` limit counted by the server
itself, and retries as for every other service (tests/fakelocal.py is the server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import serve_in_thread
from fakelocal import FakeLocalLLM

KEY = "speech-secret"
FILES = 12
SAID = [("Hello", 0.25, 0.6), ("world.", 0.6, 1.1)]
RECIPE = """\
version: 1
name: speech
inputs: [{file: "calls/*.wav"}]
transcription:
  engine: openai-compatible
  base_url: URL
  model: whisper-1
  api_key_env: SPEECH_KEY
LIMITS
tasks:
  subtitles: {export: srt}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.setenv("SPEECH_KEY", KEY)
    monkeypatch.setenv("TRANSCRIPT_RUNNER_ALLOWED_KEYS", "SPEECH_KEY")  # the operator's list
    calls = tmp_path / "calls"
    calls.mkdir()
    for n in range(FILES):  # each its own bytes: the same audio would be sent once
        (calls / f"call-{n:02}.wav").write_bytes(b"RIFF" + bytes([n]) * (1000 + n))
    return tmp_path


def write_recipe(folder: Path, base: str, limits: str = "") -> str:
    text = RECIPE.replace("URL", f"{base}/v1").replace("LIMITS\n", limits)
    (folder / "speech.yaml").write_text(text)
    return "speech.yaml"


def items(folder: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((folder / "out" / "run.json").read_text())["items"]
    return found


@pytest.mark.parametrize(
    ("limits", "options", "at_once"),
    [
        ("", (), 4),  # the documented default
        ("", ("--limit", "speech=2"), 2),
        ("limits: {speech: 2}\n", (), 2),
    ],
    ids=["default", "--limit", "recipe"],
)
def test_a_speech_server_gets_at_most_its_limit_of_files_at_once(
    folder: Path, run_cli: RunCli, limits: str, options: tuple[str, ...], at_once: int
) -> None:
    # The server holds each file until FILES are in flight (or 0.15 s passed): only
    # the client's limit keeps it from seeing all of them at once.
    server = FakeLocalLLM(key=KEY, speech=SAID, speech_gather=FILES, speech_hold=0.15)
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        recipe = write_recipe(folder, base, limits)
        code, _, err = run_cli("run", recipe, "--progress", "plain", *options)
    assert code == 0, err
    assert len(server.speech_forms) == FILES  # each file once
    assert server.speech_peak == at_once
    assert all(item["status"] == "ok" for item in items(folder))


@pytest.mark.parametrize(
    ("status", "headers"),
    [(503, {}), (429, {"Retry-After": "0.2"}), (408, {})],
)
def test_a_refusal_is_sent_again_with_the_whole_file_and_the_item_succeeds(
    folder: Path, run_cli: RunCli, status: int, headers: dict[str, str]
) -> None:
    server = FakeLocalLLM(key=KEY, speech=SAID)
    server.speech_faults.append((status, headers, {"error": {"message": "busy"}}))
    for extra in sorted((folder / "calls").iterdir())[1:]:
        extra.unlink()
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        code, _, err = run_cli("run", write_recipe(folder, base), "--progress", "plain")
    assert code == 0, err
    first, second = server.speech_forms
    assert first["file"] == second["file"] == ["1004 bytes"]  # the file reopened, whole
    (item,) = items(folder)
    assert item["status"] == "ok"
    transcript = json.loads((folder / "out" / "speech" / "call-00" / "transcript.json").read_text())
    assert transcript["text"] == "Hello world."


@pytest.mark.parametrize("status", [400, 500])
def test_a_refused_or_ambiguous_answer_is_not_sent_again(
    folder: Path, run_cli: RunCli, status: int
) -> None:
    """A 400 will not heal; after a 500 the server may have transcribed (and billed)
    the file, so the item fails rather than paying twice. The server's words reach the
    manifest without the server's key."""
    server = FakeLocalLLM(key=KEY, speech=SAID)
    echo = {"error": {"message": f"cannot use model whisper-1 with key {KEY}"}}
    server.speech_faults.append((status, {}, echo))
    for extra in sorted((folder / "calls").iterdir())[1:]:
        extra.unlink()
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        code, out, err = run_cli("run", write_recipe(folder, base), "--progress", "plain")
    assert code == 1
    assert len(server.speech_forms) == 1
    (item,) = items(folder)
    assert item["status"] == "failed"
    manifest = (folder / "out" / "run.json").read_text()
    assert f"/v1/audio/transcriptions failed ({status})" in manifest
    assert "cannot use model whisper-1 with key [REDACTED]" in manifest
    assert KEY not in manifest + out + err
