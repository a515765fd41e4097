"""Best quotes (seeds/003): find the model's quotes in the transcript, word for word.

The guide embeds windows of five sentences and the model's whole answer, and reports
the nearest windows. That gives a quote the times of its window (a quote spoken from
63.4 to 66.8 s reported as 59.3 to 85.6 s) and cannot tell a quote from an invention.
Here each quote the model proposes is aligned with the transcript's own words
(rapidfuzz's partial alignment over the words, punctuation and case ignored), so it
comes back with the start of its first word and the end of its last, the words it
matched, and a verdict:

- ``verbatim``: the words are the quote's, exactly;
- ``near-verbatim``: at least :data:`NEAR_VERBATIM` (a word or two differ);
- ``paraphrase``: at least :data:`PARAPHRASE` (the same passage, reworded);
- ``not found``: below that: the model made it up, or rewrote it past recognition.

The reply is read for quotes robustly: a JSON list, or text in quotation marks (what
follows the closing mark is commentary), or else whole lines; a preamble ("Here are
the 3 best quotes:") is never a quote. ``match: semantic`` (:mod:`.semantic`) finds
the passage by meaning instead, for paraphrases.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runner.transcript.model import Word
from runner.transcript.text import format_timestamp

MIN_QUOTE_CHARS = 12
NEAR_VERBATIM = 90.0
PARAPHRASE = 65.0

VERBATIM = "verbatim"
NEAR = "near-verbatim"
REWORDED = "paraphrase"
NOT_FOUND = "not found"
# Best first: how a quote's verdict ranks when more quotes are proposed than asked for.
VERDICT_RANK = {VERBATIM: 0, NEAR: 1, REWORDED: 2, NOT_FOUND: 3}

# Numbering ("1.", "2)", "(3)") but not a number ("1.5 million"), bullets, headings and
# "Quote 1:" labels (with a separator: "Quoted numbers" is text).
_BULLET = re.compile(
    r"^\s*(?:[-*•>]+|\(?\d+[.):](?!\d)|#+|quote\s*#?\s*\d+\s*[:.)-]|quote\s*[:-])\s*", re.I
)
# Text in quotation marks: straight or curly double quotes, or curly single quotes.
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’")
# How a reply introduces or comments on its quotes, when it puts none in quotation marks.
_PREAMBLE = re.compile(
    r"^(?:here\s+(?:are|is)|these\s+are|below\s+(?:are|is)|certainly\b|of\s+course\b|"
    r"note\b|i\s+(?:found|chose|picked|selected)\b)",
    re.I,
)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_NOT_A_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True, slots=True)
class Quote:
    quote: str  # what the model proposed
    verdict: str  # verbatim, near-verbatim, paraphrase or not found
    score: float  # 0..100: how closely the quote matched the words it was aligned with
    text: str | None  # the transcript's words it matched; None when not found
    start: int | None  # ms: the first matched word's start
    end: int | None  # ms: the last matched word's end
    similarity: float | None = None  # match: semantic: cosine similarity of the window

    @property
    def cited(self) -> bool:
        """Whether the quote is the transcript's own words (verbatim or nearly)."""
        return self.verdict in (VERBATIM, NEAR)

    def as_json(self) -> dict[str, object]:
        found = self.start is not None and self.end is not None
        similarity = {} if self.similarity is None else {"similarity": round(self.similarity, 3)}
        return {
            "quote": self.quote,
            "verdict": self.verdict,
            "score": round(self.score, 1),
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "start_timestamp": format_timestamp(self.start) if found else None,
            "end_timestamp": format_timestamp(self.end) if found else None,
            **similarity,
        }


# --- reading the reply ------------------------------------------------------------------


def candidate_quotes(reply: str) -> list[str]:
    """The quotes in a model's reply, in order, each once.

    >>> candidate_quotes('Here are the 2 best quotes:\\n1. "It is, it is unhealthy." - a warning')
    ['It is, it is unhealthy.']
    >>> candidate_quotes('["The levels outside are unhealthy.", "More fires are coming."]')
    ['The levels outside are unhealthy.', 'More fires are coming.']
    """
    found = _json_quotes(reply)
    if found is None:
        lines = [
            _BULLET.sub("", line.strip()).strip() for line in _FENCE.sub("", reply).splitlines()
        ]
        marked = [_marked(line) for line in lines]
        if any(marked):  # the model marks its quotes: the rest is commentary
            found = [quote for on_line in marked for quote in on_line]
        else:
            found = [line.strip("\"'“”‘’").strip() for line in lines if _plain_quote(line)]
    unique: list[str] = []
    for quote in found:
        quote = " ".join(quote.split())
        if len(quote) >= MIN_QUOTE_CHARS and quote not in unique:
            unique.append(quote)
    return unique


def _json_quotes(reply: str) -> list[str] | None:
    """Quotes from a reply that is JSON: a list of strings, or of objects with a
    ``quote`` or ``text``, or an object holding such a list under ``quotes``."""
    text = _FENCE.sub("", reply).strip()
    if not text.startswith(("[", "{")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("quotes")
    if not isinstance(data, list):
        return None
    quotes = []
    for entry in data:
        value = entry.get("quote") or entry.get("text") if isinstance(entry, dict) else entry
        if isinstance(value, str):
            quotes.append(value)
    return quotes


def _marked(line: str) -> list[str]:
    """What a line holds in quotation marks (long enough to be a quote)."""
    found = [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(line)]
    return [quote for quote in found if len(quote) >= MIN_QUOTE_CHARS]


def _plain_quote(line: str) -> bool:
    """Whether a line of a reply without quotation marks is a quote, not a heading or
    a sentence about the quotes."""
    return bool(line) and not (line.endswith(":") or line.startswith("(") or _PREAMBLE.match(line))


# --- finding a quote in the words -------------------------------------------------------


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def _normal(text: str) -> str:
    """A word as it is compared: lower case, curly apostrophes straight, no punctuation."""
    return _NOT_A_WORD.sub("", text.lower().translate(_APOSTROPHES))


@dataclass(frozen=True)
class WordIndex:
    """The transcript's words as one normalized string (lower case, no punctuation),
    with where each word starts in it, to align quotes with."""

    words: tuple[Word, ...]
    text: str
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, words: Sequence[Word]) -> WordIndex:
        kept = tuple(w for w in words if _normal(w.text))
        offsets, position = [], 0
        for word in kept:
            offsets.append(position)
            position += len(_normal(word.text)) + 1
        return cls(kept, " ".join(_normal(w.text) for w in kept), tuple(offsets))

    def span(self, first: int, last: int) -> str:
        """The normalized words ``first`` to ``last`` (inclusive)."""
        return " ".join(_normal(w.text) for w in self.words[first : last + 1])

    def word_at(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self.offsets, offset) - 1)

    def between(self, start: int, end: int) -> tuple[int, int]:
        """The indexes of the first and last word starting within ``start`` to ``end``
        ms (the last before the first when no word does)."""
        starts = [w.start for w in self.words]
        return bisect.bisect_left(starts, start), bisect.bisect_right(starts, end) - 1


def align(quote: str, index: WordIndex, *, lo: int = 0, hi: int | None = None) -> Quote:
    """``quote`` aligned with the words ``lo`` to ``hi`` (all by default)."""
    from rapidfuzz import fuzz

    wanted = " ".join(_normal(part) for part in quote.split() if _normal(part))
    hi = len(index.words) - 1 if hi is None else hi
    if not wanted or not index.words or hi < lo:
        return Quote(quote, NOT_FOUND, 0.0, None, None, None)
    base = index.offsets[lo]
    region = index.text[base : index.offsets[hi] + len(_normal(index.words[hi].text))]
    found = fuzz.partial_ratio_alignment(wanted, region)
    if found is None:
        return Quote(quote, NOT_FOUND, 0.0, None, None, None)
    first = index.word_at(base + found.dest_start)
    last = index.word_at(base + max(found.dest_end - 1, found.dest_start))
    first, last, score = _tightened(wanted, index, first, last, lo, hi)
    if score < PARAPHRASE:
        return Quote(quote, NOT_FOUND, score, None, None, None)
    verdict = VERBATIM if score == 100.0 else NEAR if score >= NEAR_VERBATIM else REWORDED
    matched = " ".join(w.text for w in index.words[first : last + 1])
    return Quote(quote, verdict, score, matched, index.words[first].start, index.words[last].end)


def _tightened(
    wanted: str, index: WordIndex, first: int, last: int, lo: int, hi: int
) -> tuple[int, int, float]:
    """The span of whole words around ``first..last`` that reads most like the quote:
    a partial alignment can start or end inside a word, or take one word too many."""
    from rapidfuzz import fuzz

    def score(a: int, b: int) -> float:
        return float(fuzz.ratio(wanted, index.span(a, b)))

    best = score(first, last)
    changed = True
    while changed:
        changed = False
        for a, b in ((first + 1, last), (first, last - 1), (first - 1, last), (first, last + 1)):
            if lo <= a <= b <= hi:
                candidate = score(a, b)
                if candidate > best:
                    first, last, best, changed = a, b, candidate, True
    return first, last, best


def match_quotes(reply: str, words: Sequence[Word], *, count: int) -> list[Quote]:
    """Every quote of ``reply`` found in ``words``: the best ``count`` first (cited
    before reworded, then by score), then the rest, so an invented quote is shown,
    flagged, rather than dropped."""
    index = WordIndex.of(words)
    return ranked([align(quote, index) for quote in candidate_quotes(reply)], count)


def ranked(quotes: Sequence[Quote], count: int) -> list[Quote]:
    """The best ``count`` quotes first (cited before reworded, then by score), then the
    rest in the reply's order, so an invented quote is shown, flagged, not dropped."""
    order = sorted(quotes, key=lambda q: (VERDICT_RANK[q.verdict], -q.score))
    best = [q for q in order if q.verdict != NOT_FOUND][:count]
    return best + [q for q in quotes if q not in best]
