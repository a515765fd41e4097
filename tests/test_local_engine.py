"""Speech-to-text on this machine: faster-whisper with the bundled Whisper tiny.en.

Real decoding, judged by word error rate against what was said (jiwer), never by exact
strings: on the shipped recording, and on a dialogue espeak-ng speaks for the test.
HF_HUB_OFFLINE is set: nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import RunCli

from runner.transcript.local_engine import transcribe_file

pytestmark = pytest.mark.slow  # a real Whisper model

if TYPE_CHECKING:
    import jiwer

os.environ["HF_HUB_OFFLINE"] = "1"
# A test dependency, always there in CI. Looked for, not imported: importing it (and
# NumPy, PyAV, CTranslate2) cost every worker a tenth of a second at collection; the
# first test that decodes imports it.
if importlib.util.find_spec("faster_whisper") is None:
    pytest.skip("faster-whisper is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recipes" / "audio" / "team-sync.wav"
SCRIPT = REPO / "recipes" / "audio" / "team-sync.txt"
MAX_WER = 0.10
OPTIONS = {"engine": "faster-whisper", "language": "en", "beam_size": 5}


@functools.cache
def _normal() -> jiwer.Compose:
    """Built when first used, not when the module is collected: RemovePunctuation reads
    every Unicode character's category (a quarter of a second in each worker)."""
    import jiwer

    return jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    normal = _normal()
    return float(
        jiwer.wer(reference, hypothesis, reference_transform=normal, hypothesis_transform=normal)
    )


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return transcribe_file(RECORDING, OPTIONS, "team-sync", threads=2)


def test_the_shipped_recording_is_transcribed_within_the_error_budget(
    shipped: dict[str, Any],
) -> None:
    assert wer(SCRIPT.read_text(), shipped["text"]) <= MAX_WER
    assert shipped["language_code"] == "en"
    with wave.open(str(RECORDING)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert shipped["audio_duration"] == pytest.approx(seconds, abs=0.1)
    assert 0 < shipped["confidence"] <= 1


def test_words_have_millisecond_times_in_order(shipped: dict[str, Any]) -> None:
    words = shipped["words"]
    assert len(words) > 60
    assert all(w["start"] <= w["end"] for w in words)
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
    assert words[-1]["end"] <= shipped["audio_duration"] * 1000 + 500
    assert all(w["speaker"] is None for w in words)  # Whisper tells no voices apart
    assert shipped["utterances"] is None


def test_the_same_audio_and_options_give_the_same_id() -> None:
    """On a 4-second recording: the id depends on the audio and options, not the length."""
    short = REPO / "tests" / "fixtures" / "audio" / "fox.wav"
    first = transcribe_file(short, OPTIONS, "fox", threads=2)
    again = transcribe_file(short, OPTIONS, "fox", threads=2)
    other = transcribe_file(short, {**OPTIONS, "beam_size": 1}, "fox", threads=2)
    assert again["id"] == first["id"]
    assert other["id"] != first["id"]


DIALOGUE = [
    ("en-us", "Did the delivery from the warehouse arrive this morning?"),
    ("en-us+f3", "Yes, twelve boxes arrived, but two of them were damaged."),
    ("en-us", "Please send photos of the damage to the insurance company today."),
]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason=".ci/run installs espeak-ng")
def test_a_synthesised_dialogue_is_transcribed_within_the_error_budget(tmp_path: Path) -> None:
    parts = []
    for index, (voice, text) in enumerate(DIALOGUE):
        part = tmp_path / f"{index}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(part), text], check=True)
        parts.append(part)
    joined = tmp_path / "dialogue.wav"
    with wave.open(str(joined), "wb") as out:
        for index, part in enumerate(parts):
            with wave.open(str(part)) as turn:
                if index == 0:
                    out.setparams(turn.getparams())
                out.writeframes(turn.readframes(turn.getnframes()))
    found = transcribe_file(joined, OPTIONS, "dialogue", threads=2)
    assert wer(" ".join(text for _, text in DIALOGUE), found["text"]) <= MAX_WER


def copy_first_run(folder: Path) -> Path:
    (folder / "audio").mkdir()
    shutil.copy(RECORDING, folder / "audio" / RECORDING.name)
    shutil.copy(REPO / "recipes" / "first-run.yaml", folder / "first-run.yaml")
    return folder / "first-run.yaml"


def test_the_first_run_needs_no_key_and_transcribes_once(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.delenv("CI", raising=False)  # a person trying it, not a CI job
    monkeypatch.chdir(tmp_path)
    copy_first_run(tmp_path)
    code, _, err = run_cli("run", "first-run.yaml", "--progress", "plain")
    assert code == 0, err
    item = tmp_path / "out" / "first-run" / "team-sync"
    transcript = json.loads((item / "transcript.json").read_text())
    assert wer(SCRIPT.read_text(), transcript["text"]) <= MAX_WER
    assert (item / "subtitles.srt").read_text().startswith("1\n00:00:0")
    assert (item / "readable.md").read_text().startswith("# team-sync\n\n**0:00** ")
    assert (tmp_path / "out" / "first-run" / "results.csv").is_file()
    assert "not run: the LLM tasks need an LLM: set ASSEMBLYAI_API_KEY" in err
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    (record,) = manifest["items"]
    assert record["status"] == "ok"
    assert record["speech_model"] == "faster-whisper:tiny.en"
    assert {t["task"]: t["status"] for t in record["tasks"]}["summary"] == "not run"
    assert record["tasks"][0]["export_source"] == "built"  # nothing was asked of AssemblyAI

    code, _, err = run_cli("run", "first-run.yaml", "--progress", "plain")
    assert code == 0, err
    (again,) = json.loads((tmp_path / "out" / "run.json").read_text())["items"]
    assert again["reused"] is True  # from the ledger: not decoded twice
    assert again["transcript_seconds"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "  - url: https://example.com/a.mp3\n",
            "engine faster-whisper transcribes local audio files; a url input needs AssemblyAI",
        ),
        (
            "",
            "`inject_transcript: true` sends AssemblyAI the transcript's id",
        ),
    ],
)
def test_validate_refuses_what_needs_assemblyai(
    tmp_path: Path, run_cli: RunCli, extra: str, message: str
) -> None:
    recipe = copy_first_run(tmp_path)
    text = recipe.read_text().replace(
        "  - file: audio/team-sync.wav\n", f"  - file: audio/team-sync.wav\n{extra}"
    )
    if not extra:
        text = text.replace("  summary:\n", "  summary:\n    inject_transcript: true\n").replace(
            "{{ transcript.text }}", "{{ gateway_transcript }}"
        )
    recipe.write_text(text)
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert message in out + err


def test_the_first_runs_summary_runs_on_a_local_server_when_one_is_given(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakeapi import serve_in_thread
    from fakelocal import FakeLocalLLM

    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.setenv("CI", "true")  # the LLM task runs on the server: no key needed even in CI
    monkeypatch.chdir(tmp_path)
    copy_first_run(tmp_path)
    server = FakeLocalLLM("llama-server")
    quotes = '"Please book the meeting room for the launch review"\n"Let\'s decide that on Monday."'
    server.responder = lambda body: (
        quotes if "best quotes" in str(body) else "- the launch moved to Thursday"
    )
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        monkeypatch.setenv("TRANSCRIPT_RUNNER_LLM_URL", f"{base}/v1")
        code, _, err = run_cli("run", "first-run.yaml", "--progress", "plain")
    assert code == 0, err
    summary_request = next(r for r in server.requests if "three bullet" in str(r.body))
    assert "Transcript: Good morning" in summary_request.body["messages"][0]["content"]
    summary = tmp_path / "out" / "first-run" / "team-sync" / "summary.md"
    assert summary.read_text() == "- the launch moved to Thursday\n"
    assert "not run" not in err


def test_in_ci_a_missing_key_fails_instead_of_skipping_the_prompts(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.setenv("CI", "true")
    monkeypatch.chdir(tmp_path)
    copy_first_run(tmp_path)
    code, _, err = run_cli("run", "first-run.yaml", "--progress", "plain")
    assert code == 2
    assert err.startswith("ASSEMBLYAI_API_KEY is not set")
    assert not (tmp_path / "out").exists()  # nothing was transcribed or written


def test_api_key_env_cannot_name_someone_elses_secret(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = copy_first_run(tmp_path)
    recipe.write_text(
        recipe.read_text().replace(
            "tasks:\n",
            "providers:\n  box: {type: openai-compatible, base_url: 'http://h/v1', "
            "api_key_env: ASSEMBLYAI_API_KEY}\ntasks:\n",
        )
    )
    code, out, _ = run_cli("validate", str(recipe))
    assert code == 3
    assert "api_key_env 'ASSEMBLYAI_API_KEY' would send that secret to the server" in out
