"""Best quotes (seeds/003): match the model's quotes to the transcript's own sentences.

The guide embeds sentence windows and the model's answer and takes the nearest
neighbours. Embedding models cannot be downloaded here, and the model is asked
to quote word for word, so we align each quote with the sentence windows by fuzzy
partial matching (rapidfuzz), which also survives small wording differences.
Each quote comes back with the real start and end of the window it came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runner.transcript.model import Sentence
from runner.transcript.text import Window, format_timestamp, sentence_windows

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)]|QUOTE\s*#?\d+:?)\s*", re.IGNORECASE)
MIN_QUOTE_CHARS = 12


@dataclass(frozen=True, slots=True)
class Quote:
    quote: str  # what the model proposed
    text: str  # the transcript window it matched
    start: int  # ms
    end: int  # ms
    score: float  # 0..100, how well the quote matched the window

    def as_json(self) -> dict[str, object]:
        return {
            "quote": self.quote,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "start_timestamp": format_timestamp(self.start),
            "end_timestamp": format_timestamp(self.end),
            "score": round(self.score, 1),
        }


def candidate_quotes(reply: str) -> list[str]:
    """The quotes in a model's reply: one per line, bullets and quote marks removed."""
    found: list[str] = []
    for line in reply.splitlines():
        text = _BULLET.sub("", line).strip().strip("\"'“”‘’").strip()
        if len(text) >= MIN_QUOTE_CHARS and text not in found:
            found.append(text)
    return found


def match_quotes(
    reply: str, sentences: Sequence[Sentence], *, count: int, window: int, overlap: int
) -> list[Quote]:
    """Up to ``count`` quotes from ``reply``, each placed on its best transcript window."""
    from rapidfuzz import fuzz

    windows = sentence_windows(sentences, window, overlap)
    if not windows:
        return []
    matched: list[Quote] = []
    for quote in candidate_quotes(reply):
        best: tuple[float, Window] = max(
            ((fuzz.partial_ratio(quote.lower(), w.text.lower()), w) for w in windows),
            key=lambda pair: pair[0],
        )
        score, chosen = best
        matched.append(Quote(quote, chosen.text, chosen.start, chosen.end, score))
    matched.sort(key=lambda q: q.score, reverse=True)
    return matched[:count]
