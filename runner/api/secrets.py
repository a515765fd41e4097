"""Secrets: which variables a recipe may send as a key, and keeping every key in use out
of whatever a server says back.

**Redaction is by meaning, not by bytes.** A server (or a proxy in front of it) may
echo the ``Authorization`` header in an error, and it may write the key in any way
that reads back as the key: JSON escapes (``\\u002B`` for ``+``, ``\\/``), percent- or
HTML-encoding, upper or lower case, base64 (standard or URL-safe, padded or not, and
inside ``base64("Bearer KEY")`` or ``base64("user:KEY")``). :class:`Secrets` knows
every key of the run and builds, once, one regular expression that matches each of
those forms, character by character: every character of a key may come literally or
escaped in any of those ways, so no decoding of the text can give the key back (the
forms and their pattern: :mod:`runner.api.key_forms`). It is applied to each body as
read (:mod:`runner.api.http`), and to what is assembled from several pieces of a reply
(a streamed answer, an error message). It is compiled the first time a body holds the
beginning of a form: most processes never see a key, and compiling costs tens of
milliseconds a key.

A key shorter than :data:`~runner.api.key_forms.SHORT_KEY` characters is a placeholder
rather than a secret (``none``, ``local``: what a server that checks no key is given);
rewriting it wherever it appears would rewrite ordinary words in replies. It is
redacted only as a whole word (not inside a longer one), in its exact case, and not in
base64.

**Which variables a recipe may name** (``api_key_env``, in ``providers:`` and
``transcription:``): a recipe is edited in pull requests and runs in CI beside the
repository's secrets, so it may only name variables the operator meant for it:

* names beginning with ``TRANSCRIPT_RUNNER_`` (``TRANSCRIPT_RUNNER_LLM_KEY``, which
  ``--llm-url`` uses), which no CI system or cloud sets on its own;
* names listed in ``TRANSCRIPT_RUNNER_ALLOWED_KEYS`` (comma-separated), set in the
  environment by whoever runs it (``OPENAI_API_KEY`` needs listing there: a CI job may
  hold it for something else, and a recipe could send it to any host);
* never, even when listed, a variable that is no server's key: AssemblyAI's key, the
  CI system's own tokens, cloud and package-registry credentials (:data:`NEVER_SENT`).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

from runner.api.key_forms import (
    ESCAPE_CHARACTERS,
    UTF8,
    Form,
    alternation,
    beginnings,
    every_form,
    literal_characters,
)

REDACTED: Final = "[REDACTED]"

KEY_PREFIX: Final = "TRANSCRIPT_RUNNER_"
ALLOWED_KEYS_ENV: Final = "TRANSCRIPT_RUNNER_ALLOWED_KEYS"
# Variables that are never a server's key, refused even when the operator lists them:
# AssemblyAI's key (never sent to another host), the CI system's own tokens, cloud
# and package-registry credentials.
NEVER_SENT: Final = frozenset(
    {
        "ASSEMBLYAI_API_KEY",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "CI_JOB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "NPM_TOKEN",
        "NODE_AUTH_TOKEN",
        "PYPI_TOKEN",
        "TWINE_PASSWORD",
        "DOCKER_PASSWORD",
    }
)
NEVER_SENT_PREFIXES: Final = ("ACTIONS_", "RUNNER_", "GITHUB_", "CI_")

_Data = TypeVar("_Data")


class Secrets:
    """The keys in use in a run, and :meth:`redact` to take them out of text."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.keys: frozenset[str] = frozenset(key for key in keys if key)
        self._matcher = _compiled(self.keys)  # compiles nothing until a body needs it

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Secrets({len(self.keys)} keys)"

    def with_keys(self, keys: Iterable[str]) -> Secrets:
        """These secrets and ``keys`` (self when nothing is new: patterns are built once)."""
        more = frozenset(key for key in keys if key)
        return self if more <= self.keys else Secrets(self.keys | more)

    def redact(self, text: str) -> str:
        """``text`` with every form of every key replaced by ``[REDACTED]``."""
        if self._matcher is None:
            return text
        # Searched as UTF-8: every form is made of whole characters, so what is found
        # begins and ends between two characters, and decodes back around the mark.
        data = text.encode(*UTF8)
        redacted = self._matcher.sub(_REDACTED_BYTES, data)
        return text if redacted is data else redacted.decode(*UTF8)

    def redact_bytes(self, body: bytes) -> bytes:
        """A body as received, redacted the same way (valid JSON stays valid JSON)."""
        return body if self._matcher is None else self._matcher.sub(_REDACTED_BYTES, body)

    def redact_data(self, value: _Data) -> _Data:
        """Decoded JSON (or any lists, tuples and mappings of strings) redacted: every
        string in it, keys included; what holds no secret comes back as it was."""
        if self._matcher is None:
            return value
        return _walk(value, self.redact)  # type: ignore[no-any-return]


_REDACTED_BYTES: Final = REDACTED.encode()


def _walk(value: Any, redact: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {_walk(k, redact): _walk(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(item, redact) for item in value)
    return value


# ---------------------------------------------------------------------------------------
# Finding the forms: the runs that may hold one, then the pattern.
# ---------------------------------------------------------------------------------------


class _Matcher:
    """Every form of every key, found fast, and built only when needed.

    Trying the whole alternation at every position of a 150 KB transcript takes tens
    of milliseconds; instead, runs of characters that can make up a form (letters,
    digits, the keys' other characters and those of the escapes) at least as long as
    the shortest form are found first, and only they are searched. A run ends at a
    character no form has, so a form never crosses one.

    Finding the runs with a regular expression cost 3 ms for a 140 KB transcript
    (every answer is redacted): it reads each short run again from each of its
    characters. They are found in C instead: each byte a run may hold turned into 1
    (``bytes.translate``), then a search for ``shortest`` ones in a row; the first such
    position is a run's start, and the run ends at the next 0. Text is searched as its
    UTF-8 bytes: every form is made of whole characters, and a byte that is part of no
    form's character ends a run as its character would.

    Compiling the alternation costs tens of milliseconds a key (``re``'s parser reads
    some 40 characters of pattern for each character of each form), and most
    processes never see a key: a crash report, a run whose servers never echo one. So
    there is one pattern, for bytes (text is searched as its UTF-8), and it is
    compiled the first time a run holds the beginning of a form (its first
    :data:`~runner.api.key_forms.BEGINNING` characters, in any of their ways), which a
    small pattern, compiled the first time there is a run at all, tells. Each is
    compiled once, under a lock: bodies are redacted on several threads.
    """

    def __init__(self, forms: list[Form]) -> None:
        self._forms = forms  # longest first: a key that contains another is redacted whole
        shortest = min(len(form.text) for form in forms)
        characters = literal_characters(forms) | set(ESCAPE_CHARACTERS)
        run_bytes = set("".join(characters).encode(*UTF8)) | set(_ALNUM_BYTES)
        self._marks = _RunBytes(frozenset(run_bytes), shortest)
        self._lock = threading.Lock()
        # By what writes their source (beginnings, alternation): each compiled once.
        self._patterns: dict[Callable[[list[Form]], str], re.Pattern[bytes]] = {}

    def sub(self, replacement: bytes, data: bytes) -> bytes:
        pieces: list[bytes] = []
        last = 0
        for start, end in self._marks.spans(data):
            if self._beginning_of_a_form().search(data, start, end) is None:
                continue  # no form begins in this run: the whole pattern is not needed
            for found in self._every_form().finditer(data, start, end):
                pieces += [data[last : found.start()], replacement]
                last = found.end()
        if not pieces:
            return data
        pieces.append(data[last:])
        return b"".join(pieces)

    def _beginning_of_a_form(self) -> re.Pattern[bytes]:
        return self._patterns.get(beginnings) or self._compiled_once(beginnings)

    def _every_form(self) -> re.Pattern[bytes]:
        return self._patterns.get(alternation) or self._compiled_once(alternation)

    def _compiled_once(self, source: Callable[[list[Form]], str]) -> re.Pattern[bytes]:
        """``source``'s pattern, compiled by this thread or by another meanwhile."""
        with self._lock:
            if source not in self._patterns:
                self._patterns[source] = re.compile(source(self._forms).encode(*UTF8))
            return self._patterns[source]


class _RunBytes:
    """The runs of at least ``length`` bytes of ``run_bytes``, found in C."""

    def __init__(self, run_bytes: frozenset[int], length: int) -> None:
        self._table = bytes(1 if byte in run_bytes else 0 for byte in range(256))
        self._needle = b"\x01" * length

    def spans(self, data: bytes) -> Iterator[tuple[int, int]]:
        marked = data.translate(self._table)
        start = marked.find(self._needle)
        while start != -1:  # the first place with enough in a row is where a run starts
            end = marked.find(b"\0", start)
            end = len(marked) if end == -1 else end
            yield start, end
            start = marked.find(self._needle, end)


@functools.lru_cache(maxsize=32)
def _compiled(keys: frozenset[str]) -> _Matcher | None:
    """The matcher for ``keys`` (one per set of keys: each client of a run shares the
    run's, and what it compiles, once, takes a few tens of milliseconds)."""
    forms = every_form(keys)
    return _Matcher(forms) if forms else None


# Letters and digits are always part of a run, so a run never starts or ends beside
# one: a short key's whole-word test sees the same neighbours as in the whole text.
_ALNUM_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


# ---------------------------------------------------------------------------------------
# Which variables a recipe may name.
# ---------------------------------------------------------------------------------------


def allowed_key_variables(environ: Mapping[str, str]) -> frozenset[str]:
    """The names the operator listed in ``TRANSCRIPT_RUNNER_ALLOWED_KEYS``."""
    listed = environ.get(ALLOWED_KEYS_ENV, "")
    return frozenset(name.strip() for name in listed.split(",") if name.strip())


def key_variable_problem(name: str, environ: Mapping[str, str]) -> str | None:
    """Why ``api_key_env: name`` may not be sent to the server a recipe names; None
    when it may."""
    if name in NEVER_SENT or name.startswith(NEVER_SENT_PREFIXES):
        return (
            f"api_key_env {name!r} would send that secret to the server this recipe "
            "names, and it is never a server's key (AssemblyAI's key, a CI system's "
            "token, a cloud or package-registry credential), even when listed in "
            f"{ALLOWED_KEYS_ENV}; put the server's own key in a variable of its own, "
            f"such as {KEY_PREFIX}LLM_KEY"
        )
    if name.startswith(KEY_PREFIX) or name in allowed_key_variables(environ):
        return None
    return (
        f"api_key_env {name!r} would send that secret to the server this recipe names, "
        f"and no one allowed it: a recipe may name variables beginning with {KEY_PREFIX} "
        f"or listed in {ALLOWED_KEYS_ENV} (comma-separated, set by whoever runs the "
        f"recipe, never by the recipe); put the server's key in {KEY_PREFIX}LLM_KEY (or "
        f"another {KEY_PREFIX}NAME), or run with {ALLOWED_KEYS_ENV}={name}"
    )
