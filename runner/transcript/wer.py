"""Word error rate: how far a transcript is from what was really said.

Both texts go through one normaliser first, so a transcript is not charged for
writing what was said differently (the rules, in order):

1. Unicode compatibility forms folded (NFKC) and everything lower case.
2. Numbers written as words: ``25`` and ``twenty-five`` are the same two words
   (``twenty five``); ``1,200`` is ``one thousand two hundred``; ``3.5`` is
   ``three point five``; ``21st`` is ``twenty first``; ``%`` is ``percent``. Digits are
   spelled out, never words turned into digits: speech engines differ in which they
   write, and spelling is the direction with one answer.
3. Hyphens, dashes and slashes split words; apostrophes join them (``let's`` is
   ``lets``); every other punctuation mark or symbol is dropped (``$5`` is ``five``).
4. Runs of spaces are one space.

The rate itself (substitutions, deletions and insertions over the reference's words)
is jiwer's: a maintained, tested implementation of the edit distance every speech
benchmark reports.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
    *("seventeen", "eighteen", "nineteen"),
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_LARGEST = 10**12  # digits beyond this are read one by one, as a phone number would be

_GROUPED = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER = re.compile(r"\d+")
_SPLITS = re.compile(r"[-‐‑‒–—―/]")
_APOSTROPHES = re.compile(r"['’ʼ]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class WordErrors:
    """A transcript against its reference, after :func:`normalise`."""

    rate: float  # (substitutions + deletions + insertions) / reference words
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    def describe(self) -> str:
        return (
            f"WER {self.rate:.3f}: {self.substitutions} substituted, {self.deletions} "
            f"missing and {self.insertions} extra of {self.reference_words} words"
        )


def normalise(text: str) -> str:
    """``text`` as the words that are compared (the rules in the module's docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _GROUPED.sub("", text).replace("%", " percent ")
    text = _ORDINAL.sub(lambda m: " " + _ordinal(_spoken(m.group(1))) + " ", text)
    text = _DECIMAL.sub(
        lambda m: f" {_spoken(m.group(1))} point {' '.join(_ONES[int(d)] for d in m.group(2))} ",
        text,
    )
    text = _NUMBER.sub(lambda m: " " + _spoken(m.group(0)) + " ", text)
    text = _APOSTROPHES.sub("", _SPLITS.sub(" ", text))
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """How ``hypothesis`` differs from ``reference``, word by word, both normalised.
    A ValueError when the reference has no words (a rate over nothing means nothing)."""
    import jiwer  # imported when a rate is wanted: most runs compute none

    truth, found = normalise(reference), normalise(hypothesis)
    if not truth:
        raise ValueError("the reference has no words")
    # An empty transcript misses every word: jiwer refuses an empty hypothesis.
    if not found:
        words = len(truth.split())
        return WordErrors(1.0, 0, words, 0, words)
    out = jiwer.process_words(truth, found)
    words = out.hits + out.substitutions + out.deletions
    return WordErrors(
        rate=float(out.wer),
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
        reference_words=words,
    )


def _spoken(digits: str) -> str:
    number = int(digits)
    if number >= _LARGEST or (digits.startswith("0") and len(digits) > 1):
        return " ".join(_ONES[int(d)] for d in digits)  # "007", a long code: digit by digit
    return _words(number)


def _words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for size, name in _SCALES:
        if number >= size:
            high, rest = divmod(number, size)
            return f"{_words(high)} {name}" + (f" {_words(rest)}" if rest else "")
    raise AssertionError(number)  # every number >= 100 has a scale


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()
