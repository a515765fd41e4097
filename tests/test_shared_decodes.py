"""The suite's recorded Whisper decodes (tests/shared_decodes.py) stand for the bundled
tiny.en only while they are its answers: the shipped recording's decode gives the words
the local engine gave when tests/fixtures/transcripts/team-sync.json was made, and a
recording from other model files (or another faster-whisper) is not used."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import shared_decodes
from shared_decodes import bundled_digest, recorded_decodes, shipped_recordings

from runner.transcript import local_engine

FIXTURE = Path(__file__).parent / "fixtures" / "transcripts" / "team-sync.json"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None, reason="the local extra is not installed"
)


def test_the_recorded_decode_gives_the_words_the_local_engine_gave() -> None:
    recorded = shared_decodes.RECORDED.read_text(encoding="utf-8")
    if json.loads(recorded)["model_files_sha256"] != bundled_digest():
        pytest.skip("recorded with another tiny.en or faster-whisper: decoded for real here")
    (found,) = recorded_decodes().values()  # one shipped recording, as first-run.yaml asks
    segments, info = shared_decodes._loaded(found)
    words = [local_engine._word(w) for s in segments for w in s.words or () if w.word.strip()]
    made = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert [(w["text"], w["start"], w["end"]) for w in words] == [
        (w["text"], w["start"], w["end"]) for w in made["words"]
    ]
    assert round(info.duration, 3) == made["audio_duration"]
    assert len(shipped_recordings()) == 1


def test_a_recording_of_other_model_files_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "recorded.json"
    kept = json.loads(shared_decodes.RECORDED.read_text(encoding="utf-8"))
    other.write_text(json.dumps({**kept, "model_files_sha256": "0" * 64}), encoding="utf-8")
    monkeypatch.setattr(shared_decodes, "RECORDED", other)
    recorded_decodes.cache_clear()
    try:
        assert recorded_decodes() == {}
    finally:
        recorded_decodes.cache_clear()
