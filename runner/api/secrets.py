"""Secrets: which variables a recipe may send as a key, and keeping every key in use out
of whatever a server says back.

**Redaction is by meaning, not by bytes.** A server (or a proxy in front of it) may
echo the ``Authorization`` header in an error, and it may write the key in any way
that reads back as the key: JSON escapes (``\\u002B`` for ``+``, ``\\/``), percent- or
HTML-encoding, upper or lower case, base64 (standard or URL-safe, padded or not, and
inside ``base64("Bearer KEY")`` or ``base64("user:KEY")``). :class:`Secrets` knows
every key of the run and builds, once, one regular expression that matches each of
those forms, character by character: every character of a key may come literally or
escaped in any of those ways, so no decoding of the text can give the key back. It is
applied to each body as read (:mod:`runner.api.http`), and to what is assembled from
several pieces of a reply (a streamed answer, an error message).

A key shorter than :data:`SHORT_KEY` characters is a placeholder rather than a secret
(``none``, ``local``: what a server that checks no key is given); rewriting it
wherever it appears would rewrite ordinary words in replies. It is redacted only as a
whole word (not inside a longer one), in its exact case, and not in base64.

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

import base64
import functools
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, NamedTuple, TypeVar

REDACTED: Final = "[REDACTED]"
SHORT_KEY: Final = 8  # keys shorter than this are redacted as whole words only

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
# Text is searched as its UTF-8: a lone surrogate (a byte the environment could not
# decode) is three bytes like any other character, not an error.
_UTF8: Final = ("utf-8", "surrogatepass")


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
        data = text.encode(*_UTF8)
        redacted = self._matcher.sub(_REDACTED_BYTES, data)
        return text if redacted is data else redacted.decode(*_UTF8)

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
# The pattern: every key, in every form, as one alternation.
# ---------------------------------------------------------------------------------------


class _Form(NamedTuple):
    """One way a key may be written: its plain text (the key, or a part of its base64),
    whether its letters may come in either case, and whether it is found only as a
    whole word (a short key)."""

    text: str
    fold_case: bool = False
    whole_word: bool = False

    def pattern(self) -> str:
        word = _escaped(self.text, fold_case=self.fold_case)
        return rf"(?<![A-Za-z0-9]){word}(?![A-Za-z0-9])" if self.whole_word else word

    def beginning(self) -> str:
        return _escaped(self.text[:_BEGINNING], fold_case=self.fold_case)


# A form's first characters: a run holding none of the forms' beginnings holds no form.
_BEGINNING: Final = 6


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

    Compiling the alternation costs tens of milliseconds a key (``re`` parses some
    50 characters of pattern a character of each form), and most processes never see
    a key: a crash report, a run whose servers never echo one. So there is one
    pattern, for bytes, and it is compiled the first time a run holds the beginning of
    a form (its first :data:`_BEGINNING` characters, in any of their ways): a small
    pattern, compiled the first time there is a run at all. Both are compiled once,
    under a lock: bodies are redacted on several threads.
    """

    def __init__(self, forms: list[_Form]) -> None:
        self._forms = forms  # longest first: a key that contains another is redacted whole
        shortest = min(len(form.text) for form in forms)
        characters = set("".join(form.text for form in forms)) | set(_ESCAPE_CHARACTERS)
        run_bytes = set("".join(characters).encode(*_UTF8)) | set(_ALNUM_BYTES)
        self._marks = _RunBytes(frozenset(run_bytes), shortest)
        self._lock = threading.Lock()
        self._beginnings: re.Pattern[bytes] | None = None
        self._whole: re.Pattern[bytes] | None = None

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

    def compiled(self) -> tuple[bool, bool]:
        """Whether the beginnings' pattern and the whole one are compiled yet."""
        return self._beginnings is not None, self._whole is not None

    def _beginning_of_a_form(self) -> re.Pattern[bytes]:
        if self._beginnings is None:
            with self._lock:
                if self._beginnings is None:
                    source = "|".join(sorted({form.beginning() for form in self._forms}))
                    self._beginnings = re.compile(source.encode(*_UTF8))
        return self._beginnings

    def _every_form(self) -> re.Pattern[bytes]:
        if self._whole is None:
            with self._lock:
                if self._whole is None:
                    source = _alternation(self._forms)
                    self._whole = re.compile(source.encode(*_UTF8))
        return self._whole


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
    forms: dict[str, _Form] = {}
    for key in keys:
        for form in _forms(key):
            forms.setdefault(form.text, form)
    if not forms:
        return None
    return _Matcher(sorted(forms.values(), key=lambda form: len(form.text), reverse=True))


# Letters and digits are always part of a run, so a run never starts or ends beside
# one: a short key's whole-word test sees the same neighbours as in the whole text.
_ALNUM_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ESCAPE_CHARACTERS = "\\%&#;xXu"


def _forms(key: str) -> list[_Form]:
    """The key's forms: the key itself and, for a real key, its base64."""
    if len(key) < SHORT_KEY:
        return [_Form(key, whole_word=True)]
    found = [_Form(key, fold_case=True)]
    for cased in {key, key.upper(), key.lower()}:
        found += [_Form(core) for core in _base64_cores(cased)]
    return found


def _alternation(forms: list[_Form]) -> str:
    """The forms, longest first, as one pattern: at each place, the first that is found
    there, so the longest. Forms that begin alike are written as a tree of their
    shared beginnings (``c2st(?:Y2kt...|...)``): about half the pattern for ``re`` to
    parse. A tree holds forms that follow one another in the list, and only while it
    finds what they would: else the next form begins another tree, or stands alone."""
    pieces: list[str | _Fork] = []
    for form in forms:
        if pieces and isinstance(pieces[-1], _Fork) and pieces[-1].add(form):
            continue
        tree = _Fork()
        pieces.append(tree if tree.add(form) else form.pattern())
    return "|".join(piece if isinstance(piece, str) else piece.pattern() for piece in pieces)


class _Fork:
    """Forms as a tree of their shared beginnings. The tree takes the longest branch
    it can follow, the longest form found at a place, as the list does, as long as it
    can follow only one: each character read one way only (not ``%``, ``&`` or
    ``\\``, which stand for themselves or begin an escape of another; no lone
    surrogate, which begins another's JSON escape), and no two branches of a fork
    beginning with characters that a text can both have at one place."""

    def __init__(self) -> None:
        self.ends = False  # a form ends here
        self.branches: dict[str, tuple[frozenset[str], _Fork]] = {}

    def add(self, form: _Form) -> bool:
        """``form`` added, or False, and nothing added, when the tree would then find
        what the list would not (a short key's form, with its neighbours, stands alone)."""
        if form.whole_word or any(c in "%&\\" or "\ud800" <= c <= "\udfff" for c in form.text):
            return False
        fork, rest = self, form.text
        while rest and _character(rest[0], form.fold_case) in fork.branches:
            fork, rest = fork.branches[_character(rest[0], form.fold_case)][1], rest[1:]
        if rest:  # where the form leaves the tree: a branch of its own from here
            cased = _cased(rest[0], form.fold_case)
            if any(not cased.isdisjoint(other) for other, _ in fork.branches.values()):
                return False
        for char in rest:
            branch = _Fork()
            fork.branches[_character(char, form.fold_case)] = (_cased(char, form.fold_case), branch)
            fork = branch
        fork.ends = True
        return True

    def pattern(self) -> str:
        chain: list[str] = []
        fork = self
        while len(fork.branches) == 1 and not fork.ends:  # a chain nests no group
            ((character, (_, fork)),) = fork.branches.items()
            chain.append(character)
        if not fork.branches:
            return "".join(chain)
        branches = [char + rest.pattern() for char, (_, rest) in fork.branches.items()]
        body = "(?:" + "|".join(branches) + ")"
        return "".join(chain) + (body + "?" if fork.ends else body)  # the longer first


def _base64_cores(key: str) -> set[str]:
    """The key's base64 (standard and URL-safe, padded or not), and the part of it that
    is the same wherever the key sits in what was encoded (``Bearer KEY``,
    ``user:KEY``): for each of the three alignments, the characters that depend on the
    key's bytes alone (the one or two characters around them carry a few bits of it
    at most)."""
    data = key.encode(*_UTF8)
    whole = base64.b64encode(data).decode("ascii")  # the key alone: taken whole, padding too
    cores = {
        form for form in (whole, whole.rstrip("=")) for form in (form, form.translate(_URLSAFE))
    }
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        first = -(-offset * 8 // 6)  # the first character made of the key's bits only
        last = (offset + len(data)) * 8 // 6  # past the last such character
        core = encoded[first:last]
        cores |= {core, core.translate(_URLSAFE)}
    return cores


_URLSAFE = str.maketrans("+/", "-_")
_JSON_SHORT_ESCAPES = frozenset('"\\/')


def _escaped(text: str, *, fold_case: bool) -> str:
    """A pattern for ``text`` where each character may be written literally or escaped
    (JSON ``\\uXXXX`` or ``\\/``, ``%XX``, ``&#N;``, ``&#xH;``); with ``fold_case``, in
    either case. Escaped or not, a character is still the key's: the key comes back
    whatever decoding follows."""
    return "".join(_character(char, fold_case) for char in text)


@functools.lru_cache(maxsize=1024)  # the same few dozen characters in every base64 form
def _character(char: str, fold_case: bool) -> str:
    options: set[str] = set()
    for c in _cased(char, fold_case):
        options.add(re.escape(c))
        options.add(_json_escape(c))
        if c in _JSON_SHORT_ESCAPES:
            options.add(r"\\+" + re.escape(c))
        options.add("".join("%" + _hex(byte, 2) for byte in c.encode(*_UTF8)))
        options.add(f"&#0*{ord(c)};")
        options.add(f"&#[xX]0*{_hex(ord(c), 1)};")
    return "(?:" + "|".join(sorted(options)) + ")"


def _cased(char: str, fold_case: bool) -> frozenset[str]:
    cased = {char, char.upper(), char.lower()} if fold_case else {char}
    return frozenset(c for c in cased if len(c) == 1)  # "ß".upper() is two characters


def _json_escape(char: str) -> str:
    """``\\uXXXX`` for ``char`` (a surrogate pair beyond the first plane), hex in any
    case, after any number of backslashes: JSON quoted inside JSON, at any depth."""
    code = ord(char)
    if code < 0x10000:
        return r"\\+u" + _hex(code, 4)
    code -= 0x10000
    high, low = 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)
    return r"\\+u" + _hex(high, 4) + r"\\+u" + _hex(low, 4)


def _hex(number: int, width: int) -> str:
    """``number`` in hex as a pattern that takes its letters in either case."""
    digits = f"{number:0{width}X}"
    return "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in digits)


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
