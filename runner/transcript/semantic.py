"""``match: semantic``: AssemblyAI's best-quotes guide's own method, as an option.

The transcript's sentences in sliding windows, each window and each quote embedded with
a sentence-transformers model, and for each quote the window nearest by cosine
similarity. The guide stops there, and reports the window's times. Here the quote's
words are then found inside that window (:func:`runner.transcript.quotes.align`), so
a quote still gets its own words' times and a verdict; a quote whose words are not
there but whose window means the same (cosine similarity at least :data:`SIMILAR`) is a
paraphrase, with the window's text and times.

It needs the ``semantic`` extra (ONNX Runtime, tokenizers and all-MiniLM-L6-v2 as an
ONNX file: :mod:`.embedding`), or a model of your own on disk. Nothing is ever
downloaded during a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from runner.transcript.embedding import PACKAGED, EmbeddingUnavailable, embedder
from runner.transcript.model import Sentence, Word
from runner.transcript.quotes import (
    NOT_FOUND,
    REWORDED,
    VERDICT_RANK,
    Quote,
    WordIndex,
    align,
    candidate_quotes,
    ranked,
)
from runner.transcript.text import sentence_windows

# The shipped model, so `match: semantic` works offline with no model of one's own (the
# guide's multi-qa-mpnet-base-dot-v1 is a name to give `model:` where it is cached).
DEFAULT_EMBEDDING_MODEL = PACKAGED
SIMILAR = 0.6  # cosine similarity from which a window says what the quote says
SemanticUnavailable = EmbeddingUnavailable  # the name the executor catches


def _strength(quote: Quote) -> tuple[int, float]:
    return (-VERDICT_RANK[quote.verdict], quote.score)


def match_semantic(
    reply: str,
    sentences: Sequence[Sentence],
    words: Sequence[Word],
    *,
    count: int,
    window: int,
    overlap: int,
    model: str | None = None,
) -> list[Quote]:
    """Every quote of ``reply``, each looked for in the window nearest in meaning."""
    quotes = candidate_quotes(reply)
    windows = sentence_windows(sentences, window, overlap)
    if not quotes or not windows:
        return [Quote(q, NOT_FOUND, 0.0, None, None, None) for q in quotes]
    vectors = embedder(model or DEFAULT_EMBEDDING_MODEL).embed([w.text for w in windows] + quotes)
    window_vectors, quote_vectors = vectors[: len(windows)], vectors[len(windows) :]
    similarities = quote_vectors @ window_vectors.T  # unit vectors: cosine similarity
    index = WordIndex.of(words)
    found = []
    for quote, row in zip(quotes, similarities, strict=True):
        nearest = int(row.argmax())
        similarity = float(row[nearest])
        chosen = windows[nearest]
        lo, hi = index.between(chosen.start, chosen.end)
        # The words first, everywhere: a word-for-word quote is what it is, whichever
        # window its meaning is nearest to. Then the nearest window, for a rewording.
        aligned = max(align(quote, index), align(quote, index, lo=lo, hi=hi), key=_strength)
        if aligned.verdict == NOT_FOUND and similarity >= SIMILAR:
            aligned = Quote(quote, REWORDED, aligned.score, chosen.text, chosen.start, chosen.end)
        found.append(replace(aligned, similarity=similarity))
    return ranked(found, count)
