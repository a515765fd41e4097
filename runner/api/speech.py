"""OpenAI-compatible speech-to-text: ``POST {base}/audio/transcriptions``.

Asks for ``response_format=verbose_json`` with ``timestamp_granularities[]=word``:
OpenAI's API then answers with top-level ``words: [{word, start, end}]`` in seconds.
Servers differ (``tests/fixtures/local-llm/README.md``): faster-whisper-server
0.0.3 returns segments without words, and then each segment's words are given times
spread evenly over the segment (said in the transcript's ``word_times``); a server
without ``verbose_json`` is refused with its own message. whisper.cpp's server has
another path (``/inference``) and is not supported.

Each speech server has one client for the whole run, over an :class:`HttpClient` of
its own (built by ``runner.commands.run_services``), so the shared policy applies: the
``speech`` limit (files on the wire at once, per server), retries with jittered
backoff and ``Retry-After``, the retry budget, test mode and timeouts. A file is sent
again only after an answer that says the server did nothing with it (408, 429, 503,
or no connection made): OpenAI's own API bills each file, so an ambiguous failure (a
500, a connection dropped after sending) fails the item rather than paying twice.

The reply is turned into an AssemblyAI-shaped transcript, like the local engine's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp

from runner.api.gateway import gateway_error_text
from runner.api.http import HttpClient, decode_json, route_of
from runner.errors import ApiError, SourceUnreadable

# Answers that say the server did nothing with the file: it is sent again.
REFUSALS: Final = frozenset({408, 429, 503})


class SpeechClient:
    """One OpenAI-compatible speech server, over ``http``: a client whose base URL is
    the server's (up to and including ``/v1``) and whose key is the server's own,
    never AssemblyAI's (``HttpClient`` also redacts it from every answer)."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self.base_url = http.config.base_url.rstrip("/")

    async def transcribe(
        self, path: Path, options: Mapping[str, Any], audio: str
    ) -> dict[str, Any]:
        """``path`` transcribed by the server, as an AssemblyAI-shaped transcript."""
        url = f"{self.base_url}/audio/transcriptions"
        response = await self._http.request(
            "POST",
            url,
            family="speech",
            data=lambda: _form(path, options),
            idempotent=False,
            resend_statuses=REFUSALS,
            describe_error=gateway_error_text,  # OpenAI's error envelope, or the text
        )
        return shaped(
            _verbose(await decode_json(response.body), route_of("POST", url)), options, audio
        )


@contextmanager
def _form(path: Path, options: Mapping[str, Any]) -> Iterator[aiohttp.FormData]:
    """The request's form, made afresh for each attempt: its file part is opened for
    that attempt and streamed from disk (never read whole into memory)."""
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
        yield form


def _verbose(data: Any, route: str) -> Mapping[str, Any]:
    """A 2xx answer's JSON, which must be verbose_json with a ``text``."""
    if data is None:
        raise ApiError(
            f"{route} answered with something that is not verbose_json JSON", endpoint=route
        )
    if not isinstance(data, Mapping) or not isinstance(data.get("text"), str):
        raise ApiError(f"{route} answered without a 'text'", endpoint=route)
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
