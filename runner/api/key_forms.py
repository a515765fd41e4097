"""The ways a key may be written, as patterns for :mod:`runner.api.secrets`.

A real key's forms are the key itself, its letters in either case, and the cores of its
base64 (standard or URL-safe, padded or not, and the part that is the same wherever the
key sits in what was encoded: ``base64("Bearer KEY")``, ``base64("user:KEY")``); a key
shorter than :data:`SHORT_KEY` characters has one form, itself, found only as a whole
word, in its exact case. Each character of a form may be written literally or escaped
(JSON ``\\uXXXX`` or ``\\/``, ``%XX``, ``&#N;``, ``&#xH;``), so no decoding of the text
can give the key back. :func:`alternation` writes every form as one pattern that finds
the longest form at each place; :func:`beginnings`, a small one that finds their first
characters (where there are none, there is no form to look for).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from typing import Final, NamedTuple

SHORT_KEY: Final = 8  # keys shorter than this are redacted as whole words only
# Text is searched as its UTF-8: a lone surrogate (a byte the environment could not
# decode) is three bytes like any other character, not an error.
UTF8: Final = ("utf-8", "surrogatepass")
# The characters the escapes are written with, whatever character they stand for.
ESCAPE_CHARACTERS: Final = "\\%&#;xXu"

# A form's first characters: a run holding none of the forms' beginnings holds no form.
BEGINNING: Final = 6


class Form(NamedTuple):
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
        return _escaped(self.text[:BEGINNING], fold_case=self.fold_case)


def every_form(keys: Iterable[str]) -> list[Form]:
    """Every form of every key, once, longest first: a key that contains another is
    redacted whole."""
    forms: dict[str, Form] = {}
    for key in keys:
        for form in _forms(key):
            forms[form.text] = _either(forms.get(form.text), form)
    return sorted(forms.values(), key=lambda form: len(form.text), reverse=True)


def _either(kept: Form | None, form: Form) -> Form:
    """One form for two ways of writing the same text (one key is another's base64
    core): found wherever either would be, in either case if either may be, not only
    as a whole word unless both are. Which one came first depended on the order of a
    set of keys, so a key was found in its other case or not by the hash seed."""
    if kept is None:
        return form
    return Form(
        form.text,
        fold_case=kept.fold_case or form.fold_case,
        whole_word=kept.whole_word and form.whole_word,
    )


def _forms(key: str) -> list[Form]:
    """The key's forms: the key itself and, for a real key, its base64."""
    if len(key) < SHORT_KEY:
        return [Form(key, whole_word=True)]
    found = [Form(key, fold_case=True)]
    for cased in {key, key.upper(), key.lower()}:
        found += [Form(core) for core in _base64_cores(cased)]
    return found


def literal_characters(forms: list[Form]) -> set[str]:
    """Every character the forms may hold as itself (a key's own form: in either case)."""
    return {cased for form in forms for char in form.text for cased in _cased(char, form.fold_case)}


def beginnings(forms: list[Form]) -> str:
    """A pattern for the first :data:`BEGINNING` characters of any of the forms."""
    return "|".join(sorted({form.beginning() for form in forms}))


def alternation(forms: list[Form]) -> str:
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

    def add(self, form: Form) -> bool:
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
    data = key.encode(*UTF8)
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
        options.add("".join("%" + _hex(byte, 2) for byte in c.encode(*UTF8)))
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
