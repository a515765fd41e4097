"""What can go wrong between sending a request and holding its whole answer, and what
each failure means: retried, never sent (safe to resend), or sent without a usable
answer (a job may exist). The client (:mod:`runner.api.http`) decides with these."""

from __future__ import annotations

import os
from typing import Final

import aiohttp

from runner.api.replies import body_snippet

# The largest answer read: a ten-hour transcript is about 10 MB; far more is no answer.
MAX_BODY: Final = 64 * 2**20


class Malformed(Exception):
    """A 2xx answer whose body should be JSON but is not (cut short, or garbage)."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body_snippet(body))


class Misshapen(Exception):
    """A 2xx JSON answer that is not what the endpoint sends (a list page whose jobs are
    not a list, a ``prev_url`` leading elsewhere): unread, like garbage on the wire."""


class TooLarge(Exception):
    """An answer larger than any the API sends: read no further (memory stays flat)."""

    def __init__(self) -> None:
        super().__init__(f"the response is larger than {MAX_BODY // 2**20} MiB; not read")


TRANSPORT_ERRORS: Final = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    # A broken status line, a header over aiohttp's limit: the answer cannot be read.
    aiohttp.ClientResponseError,
    TimeoutError,
    Malformed,
    Misshapen,
    TooLarge,
)


def never_sent(exc: BaseException) -> bool:
    """True only when no connection was made, so the server cannot have seen the request."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def transport_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether a transport failure may be retried. TLS certificate errors never will heal."""
    if isinstance(exc, aiohttp.ClientSSLError | TooLarge):
        return False  # neither heals by asking again
    return idempotent or never_sent(exc)


def describe_transport_error(exc: BaseException) -> str:
    """A short, key-free description of a transport failure."""
    if isinstance(exc, Malformed):
        return f"the response is not valid JSON: {exc}"
    if isinstance(exc, Misshapen):
        return f"the response cannot be read: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out while connecting"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        reason = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
        return f"could not connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the response"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut off"
    if isinstance(exc, aiohttp.ClientResponseError):
        first = str(exc.message).strip().splitlines()[0] if exc.message else ""
        return f"the response could not be read ({body_snippet(first.encode(), 80)})"
    if isinstance(exc, TooLarge):
        return str(exc)
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection error ({exc.strerror or type(exc).__name__})"
    return f"connection error ({type(exc).__name__})"


async def read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, or :class:`TooLarge` past ``MAX_BODY`` (declared or streamed)."""
    if (response.content_length or 0) > MAX_BODY:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
