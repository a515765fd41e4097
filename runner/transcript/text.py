"""Text helpers over a transcript, for templates: timestamps, speaker dialogue and
statistics, sentence windows, token estimates and truncation.

Pure functions of the model in :mod:`runner.transcript.model`; the template filters
(``runner.prompt.templating.FILTERS``) are these, by name.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runner.transcript.model import Sentence, Utterance, speaker_sort_key, type_name

__all__ = [
    "SpeakerStats",
    "Window",
    "dialogue",
    "estimate_tokens",
    "format_timestamp",
    "sentence_windows",
    "speaker_stats",
    "truncate_tokens",
    "word_count",
]


# ---------------------------------------------------------------------------------------------
# Timestamps and dialogue
# ---------------------------------------------------------------------------------------------

_TIMESTAMP_STYLES = ("clock", "srt", "vtt", "short")


def format_timestamp(ms: int | float | None, style: str = "clock") -> str:
    """Format a time in milliseconds. Fractions are floored, never rounded up, so a
    timestamp never points past the moment it labels.

    Styles: ``clock`` ``HH:MM:SS``, ``srt`` ``HH:MM:SS,mmm``, ``vtt`` ``HH:MM:SS.mmm``,
    ``short`` ``M:SS`` (``H:MM:SS`` from one hour on).

    >>> format_timestamp(83_999)
    '00:01:23'
    >>> format_timestamp(3_723_456, "srt"), format_timestamp(3_723_456, "vtt")
    ('01:02:03,456', '01:02:03.456')
    >>> format_timestamp(83_999, "short"), format_timestamp(3_723_456, "short")
    ('1:23', '1:02:03')

    Raises :class:`ValueError` for ``None``, negative or non-finite times and unknown styles,
    :class:`TypeError` for non-numbers.
    """
    total_ms = _whole_ms(ms)
    if style not in _TIMESTAMP_STYLES:
        raise ValueError(
            f"format_timestamp: unknown style {style!r}; use one of {', '.join(_TIMESTAMP_STYLES)}"
        )
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if style == "srt":
        return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"
    if style == "vtt":
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    if style == "short":
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _whole_ms(ms: object) -> int:
    if ms is None:
        raise ValueError("format_timestamp: time is missing (None); expected milliseconds >= 0")
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise TypeError(f"format_timestamp: expected milliseconds as a number, got {type_name(ms)}")
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"format_timestamp: time must be a finite number of ms >= 0, got {ms!r}")
    return math.floor(ms)


class _Spoken(Protocol):
    """Anything with a speaker, a start and a text: utterances, and sentences too."""

    @property
    def speaker(self) -> str | None: ...
    @property
    def start(self) -> int: ...
    @property
    def text(self) -> str: ...


def dialogue(
    utterances: Iterable[_Spoken],
    *,
    timestamps: bool = True,
    speaker_names: Mapping[str, str] | None = None,
) -> str:
    """Render utterances one per line as ``Speaker A [00:00:12]: text``.

    ``speaker_names`` maps labels to names (``{"A": "Alice"}`` gives ``Alice [00:00:12]: …``);
    unmapped labels stay ``Speaker <label>``. Multichannel labels ``"1"``, ``"2"`` therefore
    render as ``Speaker 1``, ``Speaker 2`` (not "Channel 1"): name them with
    ``speaker_names={"1": "Agent", "2": "Customer"}``. An item without a speaker (e.g. a
    sentence of an undiarized transcript) renders as ``Unknown speaker``. The API's own
    ``{{ transcript }}`` injection has no speakers at all, which is why this exists.

    >>> us = [Utterance("A", "Hello.", 12_000, 13_000), Utterance("B", "Hi!", 13_500, 14_000)]
    >>> print(dialogue(us, speaker_names={"A": "Alice"}))
    Alice [00:00:12]: Hello.
    Speaker B [00:00:13]: Hi!
    >>> dialogue(us, timestamps=False).splitlines()[0]
    'Speaker A: Hello.'
    """
    names = speaker_names or {}
    lines = []
    for item in utterances:
        label = _speaker_label(item.speaker, names)
        stamp = f" [{format_timestamp(item.start)}]" if timestamps else ""
        lines.append(f"{label}{stamp}: {item.text}")
    return "\n".join(lines)


def _speaker_label(speaker: str | None, names: Mapping[str, str]) -> str:
    if speaker is None:
        return "Unknown speaker"
    return names.get(speaker, f"Speaker {speaker}")


@dataclass(frozen=True, slots=True)
class SpeakerStats:
    """Per-speaker totals from :func:`speaker_stats`."""

    speaker: str
    utterances: int
    words: int
    talk_time_ms: int


def speaker_stats(utterances: Iterable[Utterance]) -> dict[str, SpeakerStats]:
    """Utterance count, word count and talk time (sum of ``end - start``) per speaker,
    ordered by speaker label. Words are counted from ``words`` when present, else from text.

    >>> us = [Utterance("A", "one two", 0, 1000), Utterance("B", "three", 1000, 1500)]
    >>> speaker_stats(us)["A"]
    SpeakerStats(speaker='A', utterances=1, words=2, talk_time_ms=1000)
    """
    totals: dict[str, tuple[int, int, int]] = {}
    for u in utterances:
        count, words, talk = totals.get(u.speaker, (0, 0, 0))
        n_words = len(u.words) if u.words else word_count(u.text)
        # max(): a malformed utterance with end < start must not subtract talk time.
        totals[u.speaker] = (count + 1, words + n_words, talk + max(0, u.end - u.start))
    return {
        label: SpeakerStats(label, *totals[label]) for label in sorted(totals, key=speaker_sort_key)
    }


# ---------------------------------------------------------------------------------------------
# Sentence windows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Consecutive sentences: ``text`` joined by spaces, ``start`` of the first and ``end``
    of the last sentence (ms), and ``index``, the window's position in the list."""

    text: str
    start: int
    end: int
    sentences: tuple[Sentence, ...]
    index: int


def sentence_windows(
    sentences: Sequence[Sentence], size: int = 5, overlap: int = 2
) -> list[Window]:
    """Sliding windows of ``size`` sentences, each sharing ``overlap`` with the previous one.

    Windows step by ``size - overlap``. Unlike the cookbook's ``sliding_window`` (which loops
    ``while idx + distance < len(elements)`` and so drops the last full window, and returns
    nothing for ``size`` sentences or fewer) every sentence is covered: when the stepped
    windows stop short of the end, one more window ending at the last sentence is added
    (it may overlap its predecessor by more than ``overlap``). Fewer than ``size``
    sentences give a single window; none give ``[]``.

    >>> ss = [Sentence(f"S{i}.", i * 1000, i * 1000 + 900) for i in range(6)]
    >>> [(w.text, w.start, w.end) for w in sentence_windows(ss, size=3, overlap=1)]
    [('S0. S1. S2.', 0, 2900), ('S2. S3. S4.', 2000, 4900), ('S3. S4. S5.', 3000, 5900)]
    """
    _check_window_params(size, overlap)
    items = tuple(sentences)
    return [
        _window(items[first : first + size], index)
        for index, first in enumerate(_window_starts(len(items), size, size - overlap))
    ]


def _check_window_params(size: int, overlap: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"sentence_windows: size must be an integer >= 1, got {size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(
            f"sentence_windows: overlap must be an integer with 0 <= overlap < size ({size}), "
            f"got {overlap!r}"
        )


def _window_starts(count: int, size: int, step: int) -> list[int]:
    if count == 0:
        return []
    if count <= size:
        return [0]
    starts = list(range(0, count - size + 1, step))
    if starts[-1] + size < count:
        starts.append(count - size)
    return starts


def _window(sentences: tuple[Sentence, ...], index: int) -> Window:
    return Window(
        text=" ".join(s.text for s in sentences),
        start=sentences[0].start,
        end=sentences[-1].end,
        sentences=sentences,
        index=index,
    )


# ---------------------------------------------------------------------------------------------
# Token estimates and truncation
# ---------------------------------------------------------------------------------------------


def word_count(text: str) -> int:
    """Number of whitespace-separated words.

    >>> word_count("  Smoke from   hundreds\\nof wildfires ")
    5
    """
    return len(text.split())


def estimate_tokens(text: str) -> int:
    """Estimate the LLM tokens of ``text`` without a tokenizer (none is available offline).

    Heuristic: ``max(ceil(chars / 4), ceil(words * 4 / 3)) + wide``, where ``wide`` counts
    East Asian wide characters (one token each) and ``chars``/``words`` are measured on the
    rest. The two halves are the usual published rules of thumb for English with BPE
    tokenizers such as OpenAI's cl100k/o200k: about 4 characters, or 0.75 words, per token.
    Taking the larger errs towards over-estimating, the safe side for a budget.

    Error band (from those rules of thumb; not measured against a real tokenizer here):
    ordinary English prose and transcripts land within roughly -10 % to +25 % of the real
    count. Text dense in digits, symbols, code or URLs, and alphabetic non-Latin scripts
    (Cyrillic, Greek, Devanagari, …) can be under-counted by 2x or more; Chinese, Japanese
    and Korean are roughly right thanks to the ``wide`` term. Other LLM families' tokenizers
    differ by a further 10-30 %. Keep a margin below hard context limits.

    The estimate is 0 for ``""`` and never decreases when text is appended or prepended.

    >>> estimate_tokens(""), estimate_tokens("Smoke from hundreds of wildfires in Canada")
    (0, 11)
    """
    # isascii() is a fast path: a transcript of a few hundred kB is estimated repeatedly
    # by truncate_tokens' binary search.
    if not text.isascii():
        # Wide characters are counted apart; blanking them keeps a run of CJK text from
        # also counting as a "word".
        text, wide = _blank_wide(text)
    else:
        wide = 0
    by_chars = -(-(len(text) - wide) // 4)
    by_words = -(-(word_count(text) * 4) // 3)
    return max(by_chars, by_words) + wide


def _blank_wide(text: str) -> tuple[str, int]:
    """``text`` with East Asian wide characters replaced by spaces, and how many there were."""
    chars = list(text)
    wide = 0
    for i, ch in enumerate(chars):
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            chars[i] = " "
            wide += 1
    return "".join(chars), wide


_DEFAULT_MARKER = "\n[… transcript truncated: {omitted} of {total} estimated tokens omitted …]\n"
_WORD = re.compile(r"\S+")


def truncate_tokens(
    text: str,
    budget: int,
    marker: str = _DEFAULT_MARKER,
    *,
    keep: str = "head",
) -> str:
    """Shorten ``text`` on word boundaries so its :func:`estimate_tokens` (not counting the
    marker) fits ``budget``; text already within budget is returned unchanged.

    ``keep="head"`` keeps the beginning and appends ``marker``; ``"tail"`` keeps the end and
    prepends it; ``"middle"`` keeps the beginning and the end (about half the budget each)
    with the marker between them. ``{omitted}`` and ``{total}`` in the marker are replaced
    by estimated token counts (other braces are left alone). If not even one word fits, only
    the marker remains.

    >>> truncate_tokens("one two three four five six", 4, " […]")
    'one two three […]'
    >>> truncate_tokens("one two three four five six", 6, " … ", keep="middle")
    'one two … five six'
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"truncate_tokens: budget must be an integer >= 1, got {budget!r}")
    if keep not in ("head", "middle", "tail"):
        raise ValueError(f"truncate_tokens: keep must be 'head', 'middle' or 'tail', got {keep!r}")
    total = estimate_tokens(text)
    if total <= budget:
        return text
    spans = [m.span() for m in _WORD.finditer(text)]
    if keep == "head":
        head = _head(text, spans, budget)
        return head + _render_marker(marker, total, head)
    if keep == "tail":
        tail = _tail(text, spans, budget, 0)
        return _render_marker(marker, total, tail) + tail
    head = _head(text, spans, budget - budget // 2)
    # The tail gets whatever the head left over; it cannot overlap the head (see _tail).
    tail = _tail(text, spans, budget - estimate_tokens(head), len(head))
    return head + _render_marker(marker, total, head + tail) + tail


def _head(text: str, spans: list[tuple[int, int]], budget: int) -> str:
    """Longest prefix ending at a word end whose estimate fits; binary search is valid
    because the estimate of a prefix grows with its length."""
    low, high = 0, len(spans)  # number of words kept
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_tokens(text[: spans[mid - 1][1]]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[: spans[low - 1][1]] if low else ""


def _tail(text: str, spans: list[tuple[int, int]], budget: int, not_before: int) -> str:
    """Longest suffix starting at a word start (at or after ``not_before``) that fits."""
    # Estimates are subadditive, so when the whole text is over budget a fitting head and a
    # fitting tail can never meet; the bound only makes that explicit.
    low, high = 0, len(spans)  # index of the first word kept; len(spans) keeps nothing
    while low < high:
        mid = (low + high) // 2
        start = spans[mid][0]
        if start >= not_before and estimate_tokens(text[start:]) <= budget:
            high = mid
        else:
            low = mid + 1
    return text[spans[low][0] :] if low < len(spans) else ""


def _render_marker(marker: str, total: int, kept: str) -> str:
    omitted = max(0, total - estimate_tokens(kept))
    # str.replace rather than str.format: a user's marker may contain other braces.
    return marker.replace("{omitted}", str(omitted)).replace("{total}", str(total))
