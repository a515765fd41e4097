"""What can go wrong between sending a request and holding its whole answer, and what
each failure means: retried, never sent (safe to resend), or sent without a usable
answer (a job may exist). The client (:mod:`runner.api.http`) decides with these."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import aiohttp
import aiohttp.abc

from runner.api.replies import body_snippet

# The largest answer read: a ten-hour transcript is about 10 MB; far more is no answer.
MAX_BODY: Final = 64 * 2**20
# Bytes of answers being read at once, across every client of a run (ByteBudget).
MAX_IN_FLIGHT: Final = 128 * 2**20
CHUNK: Final = 1 << 16


class Malformed(Exception):
    """A 2xx answer that does not read as what was asked for (cut short, garbage, JSON of
    another shape): ``problem`` says how, and a snippet of the body shows it."""

    def __init__(self, body: bytes, problem: str = "not valid JSON") -> None:
        snippet = body_snippet(body)
        super().__init__(f"{problem}: {snippet}" if snippet else problem)


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
        return f"the response is {exc}"
    if isinstance(exc, Misshapen):
        return f"the response cannot be read: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"timed out while connecting: {_CHECK_ROUTE}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_failure(exc)
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


# What a user checks when a connection fails, by cause.
_CHECK_ROUTE = (
    "check this machine's network connection, a firewall, and whether it needs a proxy "
    "(the runner connects directly: it does not read HTTPS_PROXY)"
)
_CHECK_HOST = (
    "check this machine's network connection and DNS, and the host in the URL "
    "(ASSEMBLYAI_BASE_URL, ASSEMBLYAI_LLM_GATEWAY_URL, --llm-url or a provider's base_url)"
)


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """A connection that was never made, by its cause: the DNS lookup, a refusal, TLS,
    or another error of the socket; each with what to check."""
    error = exc.os_error
    where = f"{exc.host}:{exc.port}"
    if isinstance(error, socket.gaierror) or _is(exc, "ClientConnectorDNSError"):
        reason = error.strerror or str(error)
        return f"DNS lookup failed for {exc.host} ({reason}): {_CHECK_HOST}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return (
            f"TLS handshake with {where} failed ({error.strerror or error}): check the "
            "system's certificates and clock, and that nothing intercepts HTTPS"
        )
    if error.errno == errno.ECONNREFUSED:
        return (
            f"connection refused by {where}: nothing listens there; check that the "
            "server is running and the URL's host and port"
        )
    if error.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"could not reach {where} ({os.strerror(error.errno)}): {_CHECK_ROUTE}"
    reason = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
    return f"could not connect to {where} ({reason}): {_CHECK_ROUTE}"


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is aiohttp's ``name`` (absent from older aiohttp releases)."""
    kind = getattr(aiohttp, name, None)
    return isinstance(kind, type) and isinstance(exc, kind)


class ReservedNameResolver(aiohttp.abc.AbstractResolver):
    """The system's resolver, but a name under ``.invalid`` (RFC 6761 §6.4: it never
    resolves) fails at once, never asked of a DNS server: a URL made unusable on
    purpose fails in no time, and without reaching a network."""

    def __init__(self) -> None:
        self._system = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        name = host.rstrip(".").lower()
        if name == "invalid" or name.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await self._system.resolve(host, port, family)

    async def close(self) -> None:
        await self._system.close()


class Unreadable(ValueError):
    """Raised by a body reader: the answer is not what was asked for, in words that
    follow "the response is" (``not valid JSON``)."""


# What a 2xx body must read as; its ValueError makes the answer a transport fault.
BodyReader = Callable[[bytes], Any]


class ByteBudget:
    """How many bytes of answers are being read at once, shared by every client of a run.

    A reader takes bytes as chunks arrive and gives them all back when its answer has
    been handed on. A reader that would pass the limit waits for others to give bytes
    back, except the oldest reader, which always goes on: so readers never wait on each
    other in a circle, and the bytes held never pass ``limit`` plus one answer
    (``MAX_BODY``). ``peak`` is the most ever held, for tests and the curious.
    """

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._readers: dict[object, int] = {}  # in the order they started: oldest first
        self._waiters: list[asyncio.Future[None]] = []

    @contextmanager
    def reader(self) -> Iterator[object]:
        """A token for one answer's bytes, all given back when the block ends."""
        token = object()
        try:
            yield token
        finally:
            self.held -= self._readers.pop(token, 0)
            self._wake()  # the oldest reader may have changed

    async def take(self, token: object, size: int) -> None:
        """``size`` more bytes for ``token``'s answer, once they fit (or it is the oldest).

        A reader's age counts from its first bytes, not from its request: a call still
        waiting for a slow model to answer holds no one up."""
        while not self._fits(token, size):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._readers[token] = self._readers.get(token, 0) + size
        self.held += size
        self.peak = max(self.peak, self.held)

    def give_back(self, token: object, size: int) -> None:
        """``size`` of ``token``'s bytes were not needed after all."""
        self._readers[token] -= size
        self.held -= size
        self._wake()

    def _fits(self, token: object, size: int) -> bool:
        oldest = next(iter(self._readers), token)
        return self.held + size <= self.limit or oldest is token

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def read_capped(response: aiohttp.ClientResponse, budget: ByteBudget, token: object) -> bytes:
    """The whole body, or :class:`TooLarge` past ``MAX_BODY`` (declared or streamed);
    each chunk is taken from ``budget`` before it is read."""
    if (response.content_length or 0) > MAX_BODY:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        await budget.take(token, CHUNK)  # the most the next read returns
        chunk = await response.content.read(CHUNK)
        budget.give_back(token, CHUNK - len(chunk))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
