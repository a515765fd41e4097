"""OpenAI-compatible speech-to-text: ``POST {base}/audio/transcriptions``.

Asks for ``response_format=verbose_json`` with ``timestamp_granularities[]=word``:
OpenAI's API then answers with top-level ``words: [{word, start, end}]`` in seconds.
Servers differ (``tests/fixtures/local-llm/README.md``): faster-whisper-server
0.0.3 returns segments without words, and then each segment's words are given times
spread evenly over the segment (said in the transcript's ``word_times``); a server
without ``verbose_json`` is refused with its own message. whisper.cpp's server has
another path (``/inference``) and is not supported.

The reply is turned into an AssemblyAI-shaped transcript, like the local engine's.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from runner.errors import ApiError, SourceUnreadable

ROUTE = "POST /v1/audio/transcriptions"
TIMEOUT = aiohttp.ClientTimeout(total=3600, sock_connect=10)
AT_ONCE = 4  # files sent at once to one speech server (a local server decodes on the CPU)
ATTEMPTS = 3  # a 429, a 5xx or a dropped connection is tried again, twice
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class SpeechClient:
    """One OpenAI-compatible speech server: its URL and key (never AssemblyAI's)."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._slots = asyncio.Semaphore(AT_ONCE)

    @property
    def shown(self) -> str:
        """The server's URL for messages, without any user:password in it."""
        parts = urlsplit(self.base_url)
        if not (parts.username or parts.password):
            return self.base_url
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=host))

    async def transcribe(
        self, path: Path, options: Mapping[str, Any], audio: str
    ) -> dict[str, Any]:
        """``path`` transcribed by the server, as an AssemblyAI-shaped transcript; a
        transient failure is tried again, twice."""
        async with self._slots:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    status, body = await self._post(path, options)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if attempt == ATTEMPTS:
                        message = self._redacted(str(exc))
                        raise ApiError(
                            f"{ROUTE} to {self.shown} failed: {message}", endpoint=ROUTE
                        ) from None
                else:
                    if status == 200:
                        return shaped(_json(body), options, audio)
                    if status not in TRANSIENT or attempt == ATTEMPTS:
                        text = self._redacted(body.decode("utf-8", "replace"))[:300]
                        raise ApiError(
                            f"{ROUTE} failed ({status}): {text}", status=status, endpoint=ROUTE
                        )
                await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, path: Path, options: Mapping[str, Any]) -> tuple[int, bytes]:
        """One request, the file streamed from disk (never read whole into memory)."""
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            audio_file = path.open("rb")
        except OSError as exc:
            raise SourceUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
        with audio_file:
            form = aiohttp.FormData()
            form.add_field("file", audio_file, filename=path.name)
            form.add_field("model", str(options.get("model") or "whisper-1"))
            form.add_field("response_format", "verbose_json")
            form.add_field("timestamp_granularities[]", "word")
            form.add_field("timestamp_granularities[]", "segment")
            if options.get("language"):
                form.add_field("language", str(options["language"]))
            url = f"{self.base_url}/audio/transcriptions"
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as session,
                session.post(url, data=form, headers=headers, allow_redirects=False) as response,
            ):
                return response.status, await response.read()

    def _redacted(self, text: str) -> str:
        """The key out of a server's words, before anything is cut or shown."""
        return text.replace(self._key, "[REDACTED]") if self._key else text


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
    words = [word for entry in _list(data.get("words")) if (word := _word(entry)) is not None]
    word_times = "server"
    if not words:
        words = [w for segment in _list(data.get("segments")) for w in _spread(segment)]
        word_times = "spread over segments" if words else "none"
    identity = hashlib.sha256(f"{audio}\n{sorted(options.items())}".encode()).hexdigest()
    duration = data.get("duration")
    if not isinstance(duration, int | float) or isinstance(duration, bool):
        duration = None
    return {
        "id": f"local-{identity[:32]}",
        "status": "completed",
        "text": str(data["text"]).strip(),
        "words": words,
        "utterances": None,
        "language_code": _language(data.get("language")),
        "audio_duration": float(duration) if duration is not None else None,
        "confidence": None,
        "speech_model_used": f"openai-compatible:{options.get('model') or 'whisper-1'}",
        "word_times": word_times,
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _word(entry: Any) -> dict[str, Any] | None:
    """One word of the reply in ms; None for an entry without a word or its times."""
    if not isinstance(entry, Mapping):
        return None
    text = str(entry.get("word") or "").strip()
    start, end = _ms(entry.get("start")), _ms(entry.get("end"))
    if not text or start is None or end is None:
        return None
    return {"text": text, "start": start, "end": end, "confidence": None, "speaker": None}


def _spread(segment: Any) -> list[dict[str, Any]]:
    """A segment's words with times spread evenly over it (a server that gives none)."""
    if not isinstance(segment, Mapping):
        return []
    texts = str(segment.get("text", "")).split()
    start, end = _ms(segment.get("start")), _ms(segment.get("end"))
    if start is None or end is None:
        return []
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


def _ms(seconds: Any) -> int | None:
    """Seconds as whole ms; None for anything that is not a finite number >= 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return round(seconds * 1000)


# verbose_json names the language ("english"); AssemblyAI's transcripts carry codes.
_LANGUAGE_CODES = {"english": "en", "german": "de", "french": "fr", "spanish": "es"}


def _language(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _LANGUAGE_CODES.get(value.lower(), value)
