"""Grounding: is what a result says, or quotes, in the transcript, and where?

``grounded:`` checks take each quoted span of a result (``what: quotes``) or each of
its sentences (``what: claims``) and look for it in the transcript:

- first in the words (:func:`runner.transcript.quotes.align`): ``verbatim`` and
  ``near-verbatim`` come back with the first matched word's start and the last one's
  end; a quote the words find reworded is a ``paraphrase`` there too;
- else by meaning: the transcript's sentences (one, and two in a row) and the span are
  embedded with the packaged all-MiniLM-L6-v2 (:mod:`.embedding`, offline), and a span
  whose nearest passage is at least :data:`SUPPORTED` similar is a ``paraphrase``,
  with that passage's times;
- else ``not found``: nothing said in the recording supports it.

A claim is a sentence of at least :data:`MIN_CLAIM_WORDS` words; headings, bullets and
numbering are not part of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from runner.transcript.embedding import PACKAGED, EmbeddingUnavailable, embedder
from runner.transcript.model import Sentence, Word
from runner.transcript.quotes import NEAR, NOT_FOUND, REWORDED, VERBATIM, WordIndex, align
from runner.transcript.text import format_timestamp

# Cosine similarity from which a transcript passage supports a span by meaning: a
# paraphrase of what was said scores 0.6 and up with all-MiniLM-L6-v2, a sentence on
# the same topic that was not said stays below (tests/test_grounding.py holds both).
SUPPORTED = 0.6
MIN_CLAIM_WORDS = 4
SUPPORTING = (VERBATIM, NEAR, REWORDED)  # the verdicts that count as supported

# An opening quote must follow the start, a space or an opening bracket, so the text
# between two separate quotations is never taken for a quotation itself.
_QUOTED = re.compile(r"(?:^|(?<=[\s(\[:—-]))[\"“]([^\"“”\n]{12,}?)[\"”](?=$|[\s.,;:!?)\]—-])")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”')\]]*\s+")
_MARKUP = re.compile(r"^\s*(?:#+|\*\*[^*]+\*\*:?|[-*•>]+|\(?\d+[.)](?!\d))\s*")


@dataclass(frozen=True, slots=True)
class Grounding:
    """One quote or claim and what the transcript says to it."""

    text: str  # the span of the result
    verdict: str  # verbatim, near-verbatim, paraphrase or not found
    score: float  # 0..100: how closely the words matched
    source: str | None  # the transcript's words (or passage) that support it
    start: int | None  # ms
    end: int | None  # ms
    similarity: float | None = None  # by meaning, when the words did not find it

    @property
    def supported(self) -> bool:
        return self.verdict in SUPPORTING

    def as_json(self) -> dict[str, Any]:
        found = self.start is not None and self.end is not None
        shown: dict[str, Any] = {
            "text": self.text,
            "verdict": self.verdict,
            "score": round(self.score, 1),
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "start_timestamp": format_timestamp(self.start) if found else None,
            "end_timestamp": format_timestamp(self.end) if found else None,
        }
        if self.similarity is not None:
            shown["similarity"] = round(self.similarity, 3)
        return shown


def quoted_spans(text: str, data: Any) -> list[str]:
    """Quotes of a best-quotes task (its ``quote`` fields), else text in double quotes."""
    if isinstance(data, list) and all(isinstance(q, Mapping) and "quote" in q for q in data):
        return [str(q["quote"]) for q in data]
    return [" ".join(found.split()) for found in _QUOTED.findall(text)]


def claims_of(text: str) -> list[str]:
    """The result's sentences that say something: markup removed, short lines dropped."""
    claims: list[str] = []
    for line in text.splitlines():
        line = _MARKUP.sub("", line).strip()
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(sentence.split()) >= MIN_CLAIM_WORDS and sentence not in claims:
                claims.append(sentence)
    return claims


def ground(
    spans: Sequence[str],
    words: Sequence[Word],
    sentences: Sequence[Sentence],
    *,
    model: str = PACKAGED,
) -> list[Grounding]:
    """Each span's verdict and times. Without the embedding runtime (the semantic extra,
    which ``validate`` warns of) only the words are searched: a span they do not find
    is not found."""
    index = WordIndex.of(words)
    found = [_by_words(span, index) for span in spans]
    missing = [i for i, g in enumerate(found) if g.verdict == NOT_FOUND]
    if missing and sentences:
        passages = _passages(sentences)
        try:
            model_of_meaning = embedder(model)
        except EmbeddingUnavailable:
            return found
        passage_vectors = _passage_vectors(tuple(sentences), model)
        span_vectors = model_of_meaning.embed([spans[i] for i in missing])
        for i, row in zip(missing, span_vectors @ passage_vectors.T, strict=True):
            found[i] = _by_meaning(found[i], passages, [float(x) for x in row])
    return found


def _by_meaning(by_words: Grounding, passages: Sequence[_Passage], row: list[float]) -> Grounding:
    """The passage nearest in meaning supports the span when similar enough; of two
    sentences in a row, the one that says it alone when it does (its own times)."""
    nearest = max(range(len(passages)), key=row.__getitem__)
    parts = passages[nearest].parts
    alone = [p for p in parts if row[p] >= SUPPORTED]
    if alone:
        nearest = max(alone, key=row.__getitem__)
    similarity = row[nearest]
    if similarity < SUPPORTED:
        return Grounding(by_words.text, NOT_FOUND, by_words.score, None, None, None, similarity)
    passage = passages[nearest]
    return Grounding(
        by_words.text,
        REWORDED,
        by_words.score,
        passage.text,
        passage.start,
        passage.end,
        similarity,
    )


@functools.lru_cache(maxsize=8)
def _passage_vectors(sentences: tuple[Sentence, ...], model: str) -> Any:
    """The transcript's passages embedded once, for all the checks of its item (a
    quotes check and a claims check, or a rerun of one): most of grounding's time."""
    return embedder(model).embed([p.text for p in _passages(sentences)])


def _by_words(span: str, index: WordIndex) -> Grounding:
    aligned = align(span, index)
    return Grounding(span, aligned.verdict, aligned.score, aligned.text, aligned.start, aligned.end)


@dataclass(frozen=True, slots=True)
class _Passage:
    text: str
    start: int
    end: int
    parts: tuple[int, ...] = ()  # a pair: the indexes of its two sentences' passages


def _passages(sentences: Sequence[Sentence]) -> list[_Passage]:
    """Each sentence, then each two in a row (a claim often sums up both)."""
    single = [_Passage(s.text, s.start, s.end) for s in sentences]
    pairs = [
        _Passage(f"{a.text} {b.text}", a.start, b.end, (n, n + 1))
        for n, (a, b) in enumerate(pairwise(sentences))
    ]
    return single + pairs


__all__ = ["SUPPORTED", "EmbeddingUnavailable", "Grounding", "claims_of", "ground", "quoted_spans"]
