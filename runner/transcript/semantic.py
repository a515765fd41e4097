"""``match: semantic``: AssemblyAI's best-quotes guide's own method, as an option.

The transcript's sentences in sliding windows, each window and each quote embedded with
a sentence-transformers model, and for each quote the window nearest by cosine
similarity. The guide stops there, and reports the window's times. Here the quote's
words are then found inside that window (:func:`runner.transcript.quotes.align`), so
a quote still gets its own words' times and a verdict; a quote whose words are not
there but whose window means the same (cosine similarity at least :data:`SIMILAR`) is a
paraphrase, with the window's text and times.

It needs the ``semantic`` extra (PyTorch and sentence-transformers) and a model on
disk: a name in the Hugging Face cache, or the path of a model folder. Nothing is ever
downloaded during a run (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

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

DEFAULT_EMBEDDING_MODEL = "multi-qa-mpnet-base-dot-v1"  # the guide's
SIMILAR = 0.6  # cosine similarity from which a window says what the quote says
INSTALL_HINT = "pip install 'transcript-runner[semantic]'"


class SemanticUnavailable(Exception):
    """The extra is not installed, or the model cannot be loaded; the message says why."""


_models: dict[str, Any] = {}
_loading = threading.Lock()  # quotes are matched in worker threads; load each model once


def embedding_model(name_or_path: str) -> Any:
    """The sentence-transformers model, loaded once per process, from disk only."""
    with _loading:
        if name_or_path not in _models:
            _models[name_or_path] = _load(name_or_path)
        return _models[name_or_path]


def _load(name_or_path: str) -> Any:
    # Set before the import: huggingface_hub reads them once. A run must never download,
    # and progress bars would break the run's own display.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise SemanticUnavailable(
            f"match: semantic needs the semantic extra, which is not installed: {INSTALL_HINT}"
        ) from None
    _quiet_transformers()
    try:
        return SentenceTransformer(name_or_path, device="cpu")
    except (OSError, ValueError) as exc:
        raise SemanticUnavailable(
            f"cannot load the embedding model {name_or_path!r} ({_first_line(exc)}); give "
            "the path of a sentence-transformers model folder, or the name of a model in "
            "your Hugging Face cache (nothing is downloaded during a run)"
        ) from None


def _quiet_transformers() -> None:
    """No progress bars or notices from transformers while loading weights."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # sentence-transformers without transformers' logging: nothing to quiet
        return
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    embedder = embedding_model(model or DEFAULT_EMBEDDING_MODEL)
    vectors = embedder.encode(
        [w.text for w in windows] + quotes, normalize_embeddings=True, convert_to_numpy=True
    )
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
