"""Reading what a server answered: ``Retry-After`` and rate-limit headers, and error
bodies made readable (HTML from proxies, JSON from the API) without leaking them whole."""

from __future__ import annotations

import email.utils
import json as jsonlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

SNIPPET_CHARS: Final = 200


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: an integer, a float (our fake) or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A numeric header, or None when absent, not a number, or not finite."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def rate_remaining(headers: Mapping[str, str]) -> float | None:
    """``x-ratelimit-remaining``: requests left in the window (negative: overrun)."""
    return header_number(headers, "x-ratelimit-remaining")


def rate_limit_pause(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to pause when ``x-ratelimit-remaining`` is used up, else None.

    The reset header is "seconds until the window resets" (notes §6, §8); a value that
    looks like a Unix timestamp is converted, in case a service sends that instead.
    """
    remaining = header_number(headers, "x-ratelimit-remaining")
    reset = header_number(headers, "x-ratelimit-reset")
    if remaining is None or reset is None or remaining > 0:
        return None
    if reset > 1e9:
        reset -= time.time() if now is None else now
    return reset if reset > 0 else None


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What an error body says, made readable, and the request id if it carried one."""

    message: str
    request_id: str | None = None


ErrorParser = Callable[[int, bytes], ErrorText]

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def body_snippet(body: bytes, limit: int = SNIPPET_CHARS) -> str:
    """A non-JSON body as one short line: HTML tags dropped, whitespace collapsed."""
    text = _SPACE.sub(" ", _TAG.sub(" ", body.decode("utf-8", errors="replace"))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def loads_or_none(body: bytes) -> Any:
    """Parsed JSON, or None for an empty, non-JSON or absurdly nested body (JSON nested
    a few thousand levels deep exhausts the parser's recursion: no API answers that)."""
    try:
        return jsonlib.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def fallback_text(status: int, body: bytes) -> str:
    """The body as text, else the status phrase: 503/504 from proxies are not JSON (§6)."""
    snippet = body_snippet(body)
    if snippet:
        return snippet
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no error message"


def v2_error_text(status: int, body: bytes) -> ErrorText:
    """``/v2`` and LeMUR errors: ``{"error": "<message>"}`` (spec ``Error``, notes §6)."""
    data = loads_or_none(body)
    if isinstance(data, dict):
        message = data.get("error")
        request_id = data.get("request_id")
        if isinstance(message, str) and message.strip():
            return ErrorText(message.strip(), request_id if isinstance(request_id, str) else None)
    return ErrorText(fallback_text(status, body))
