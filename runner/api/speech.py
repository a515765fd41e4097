"""OpenAI-compatible speech-to-text: ``POST {base}/audio/transcriptions``.

Asks for ``response_format=verbose_json`` with ``timestamp_granularities[]=word``:
OpenAI's API then answers with top-level ``words: [{word, start, end}]`` in seconds.
Servers differ (``../shared/fixtures/local-llm/README.md``): faster-whisper-server
0.0.3 returns segments without words, and then each segment's words are given times
spread evenly over the segment (said in the transcript's ``word_times``); a server
without ``verbose_json`` is refused with its own message. whisper.cpp's server has
another path (``/inference``) and is not supported.

The reply is turned into an AssemblyAI-shaped transcript, like the local engine's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from runner.errors import ApiError, SourceUnreadable

ROUTE = "POST /v1/audio/transcriptions"
TIMEOUT = aiohttp.ClientTimeout(total=3600, sock_connect=10)


class SpeechClient:
    """One OpenAI-compatible speech server: its URL and key (never AssemblyAI's)."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key

    async def transcribe(
        self, path: Path, options: Mapping[str, Any], audio: str
    ) -> dict[str, Any]:
        """``path`` transcribed by the server, as an AssemblyAI-shaped transcript."""
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SourceUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
        form = aiohttp.FormData()
        form.add_field("file", content, filename=path.name)
        form.add_field("model", str(options.get("model") or "whisper-1"))
        form.add_field("response_format", "verbose_json")
        form.add_field("timestamp_granularities[]", "word")
        form.add_field("timestamp_granularities[]", "segment")
        if options.get("language"):
            form.add_field("language", str(options["language"]))
        url = f"{self.base_url}/audio/transcriptions"
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as session,
                session.post(url, data=form, headers=headers, allow_redirects=False) as response,
            ):
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(f"{ROUTE} to {self.base_url} failed: {exc}", endpoint=ROUTE) from None
        if status != 200:
            text = body.decode("utf-8", "replace")[:300]
            if self._key:
                text = text.replace(self._key, "[REDACTED]")
            raise ApiError(f"{ROUTE} failed ({status}): {text}", status=status, endpoint=ROUTE)
        return shaped(_json(body), options, audio)


def _json(body: bytes) -> Mapping[str, Any]:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(
            f"{ROUTE} answered with something that is not verbose_json JSON", endpoint=ROUTE
        ) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("text"), str):
        raise ApiError(f"{ROUTE} answered without a 'text'", endpoint=ROUTE)
    return data


def shaped(data: Mapping[str, Any], options: Mapping[str, Any], audio: str) -> dict[str, Any]:
    """A verbose_json reply as AssemblyAI's transcript shape: words in ms.

    >>> t = shaped({"text": "Hi there", "duration": 1.5, "language": "english",
    ...             "words": [{"word": "Hi", "start": 0.1, "end": 0.4},
    ...                       {"word": "there", "start": 0.5, "end": 0.9}]}, {}, "a")
    >>> [(w["text"], w["start"], w["end"]) for w in t["words"]], t["word_times"]
    ([('Hi', 100, 400), ('there', 500, 900)], 'server')
    """
    words = [
        {
            "text": str(w["word"]).strip(),
            "start": _ms(w["start"]),
            "end": _ms(w["end"]),
            "confidence": None,
            "speaker": None,
        }
        for w in data.get("words") or ()
        if isinstance(w, Mapping) and str(w.get("word", "")).strip()
    ]
    word_times = "server"
    if not words:
        words = [w for segment in data.get("segments") or () for w in _spread(segment)]
        word_times = "spread over segments" if words else "none"
    identity = hashlib.sha256(f"{audio}\n{sorted(options.items())}".encode()).hexdigest()
    duration = data.get("duration")
    return {
        "id": f"local-{identity[:32]}",
        "status": "completed",
        "text": str(data["text"]).strip(),
        "words": words,
        "utterances": None,
        "language_code": _language(data.get("language")),
        "audio_duration": float(duration) if isinstance(duration, int | float) else None,
        "confidence": None,
        "speech_model_used": f"openai-compatible:{options.get('model') or 'whisper-1'}",
        "word_times": word_times,
    }


def _spread(segment: Any) -> list[dict[str, Any]]:
    """A segment's words with times spread evenly over it (a server that gives none)."""
    if not isinstance(segment, Mapping):
        return []
    texts = str(segment.get("text", "")).split()
    start, end = _ms(segment.get("start", 0)), _ms(segment.get("end", 0))
    step = (end - start) / max(len(texts), 1)
    return [
        {
            "text": text,
            "start": round(start + i * step),
            "end": round(start + (i + 1) * step),
            "confidence": None,
            "speaker": None,
        }
        for i, text in enumerate(texts)
    ]


def _ms(seconds: Any) -> int:
    return round(float(seconds) * 1000)


# verbose_json names the language ("english"); AssemblyAI's transcripts carry codes.
_LANGUAGE_CODES = {"english": "en", "german": "de", "french": "fr", "spanish": "es"}


def _language(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _LANGUAGE_CODES.get(value.lower(), value)
