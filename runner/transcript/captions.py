"""Captions people can read: words laid out as subtitles the way broadcasters ask.

The BBC's and Netflix's published subtitle guidelines agree on the shape: at most two
lines of about 42 characters, a caption that ends where the speech pauses in meaning
(the end of a sentence, else of a clause, else of a phrase; never between "moved to"
and "next Thursday"), and long enough on screen to be read, yet not so long it hangs
over the next line of speech. :class:`CaptionStyle` holds those numbers; the recipe
may change each.

A caption is chosen greedily: from its first word, every run of words that fits (the
lines, the characters, the longest time on screen) is a candidate, and the one that
ends at the strongest boundary wins, the longest among equals. Runs shorter than a
third of the room are passed over unless they end a sentence, so a caption is not a
lonely "and". The lines inside a caption are split the same way, evened out. A change
of speaker (or two seconds of silence) always ends a caption; when words carry
speakers, each caption names its speaker when it changes (``[A]`` in SubRip,
``<v Speaker A>`` in WebVTT, by the format's own writer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runner.transcript.model import Word

DEFAULT_CHARS_PER_LINE = 42
DEFAULT_LINES = 2
DEFAULT_MIN_SECONDS = 1.0  # Netflix: 5/6 s at least; a second reads a short caption
DEFAULT_MAX_SECONDS = 7.0  # Netflix and the BBC: no longer than 7 s

# Words a phrase starts with: a line or caption may break before them, never after.
# (Prepositions, articles, determiners, possessives, the infinitive's "to".)
# fmt: off
_PHRASE_STARTERS = frozenset((
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its",
    "our", "their", "to", "in", "on", "at", "by", "for", "with", "from", "into", "onto",
    "about", "over", "under", "after", "before", "between", "through", "throughout",
    "during", "without", "within", "against", "among", "toward", "towards", "across",
    "behind", "beyond", "near", "per", "than", "via", "like", "as", "up",
))
# Words a clause starts with: a stronger place to break before.
_CLAUSE_STARTERS = frozenset((
    "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while",
    "whereas", "if", "unless", "until", "since", "when", "where", "which", "who", "whom",
    "whose", "whether", "then",
))
# Words that lean on the next one: ending a line or caption on one splits a phrase.
_LEANERS = _PHRASE_STARTERS | _CLAUSE_STARTERS | frozenset((
    "is", "are", "was", "were", "be", "been", "am", "will", "would", "shall", "should",
    "can", "could", "may", "might", "must", "do", "does", "did", "have", "has", "had",
    "not", "very", "i", "we", "you", "they", "he", "she", "it", "it's", "there's", "that's",
    "we're", "they're", "you're", "i'm", "what", "of", "going", "want", "wants", "wanted",
    "need", "needs", "needed", "able", "used", "trying", "kind", "sort", "some",
))
# fmt: on
_SENTENCE_END = re.compile(r"[.?!…][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–)][\"'”’]*$")

LONG_PAUSE_MS = 2000
SPEAKER = 4  # a change of speaker, or a long pause: always a break
SENTENCE = 3
CLAUSE = 2
PHRASE = 1
NONE = 0
INSIDE = -1  # between a word that leans on the next and that word


@dataclass(frozen=True, slots=True)
class CaptionStyle:
    """What a built caption may hold: ``lines`` of ``chars_per_line`` characters
    (and no more than ``chars_per_caption`` in all, when given: AssemblyAI's own
    option), on screen from ``min_seconds`` (when the next caption leaves room) to
    ``max_seconds``."""

    chars_per_line: int = DEFAULT_CHARS_PER_LINE
    lines: int = DEFAULT_LINES
    chars_per_caption: int | None = None
    min_seconds: float = DEFAULT_MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    speakers: bool = True  # mark who speaks, when the words say

    def __post_init__(self) -> None:
        if self.chars_per_line < 1 or self.lines < 1:
            raise ValueError("a caption needs at least one line of at least one character")
        if self.chars_per_caption is not None and self.chars_per_caption < 1:
            raise ValueError(f"chars_per_caption must be at least 1, got {self.chars_per_caption}")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise ValueError("min_seconds must be at least 0 and at most max_seconds")


@dataclass(frozen=True, slots=True)
class Caption:
    start: int  # ms
    end: int  # ms
    lines: tuple[str, ...]
    speaker: str | None = None  # set when the speaker changes at this caption

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


READABLE = CaptionStyle()  # the broadcasters' numbers


def captions(words: Sequence[Word], style: CaptionStyle = READABLE) -> list[Caption]:
    """``words`` as captions in ``style``: every word once, in order.

    >>> ws = [Word("Hello", 0, 400), Word("there.", 400, 900), Word("Bye.", 1000, 1300)]
    >>> [(c.text, c.start, c.end) for c in captions(ws, CaptionStyle(chars_per_line=12))]
    [('Hello there.\\nBye.', 0, 1300)]
    """
    found: list[Caption] = []
    start, previous_speaker = 0, None
    while start < len(words):
        speaker = words[start].speaker if style.speakers else None
        marked = speaker if speaker is not None and speaker != previous_speaker else None
        previous_speaker = speaker
        end = _caption_end(words, start, style, _mark_width(marked))
        chunk = words[start:end]
        found.append(
            Caption(chunk[0].start, chunk[-1].end, _lines(_texts(chunk, marked), style), marked)
        )
        start = end
    return _timed(found, style)


def _texts(words: Sequence[Word], speaker: str | None) -> list[str]:
    """The words' texts; a caption's speaker mark counts as part of its first word
    (WebVTT's writer turns it into a voice tag)."""
    texts = [w.text for w in words]
    if speaker is not None:
        texts[0] = f"{speaker_mark(speaker)}{texts[0]}"
    return texts


def speaker_mark(speaker: str) -> str:
    """How a caption's first line names its speaker: ``[A] ``."""
    return f"[{speaker}] "


def _mark_width(speaker: str | None) -> int:
    return len(speaker_mark(speaker)) if speaker is not None else 0


def boundary(words: Sequence[Word], index: int) -> int:
    """How strong a break after ``words[index]`` is (one of the constants above)."""
    word = words[index]
    after = words[index + 1] if index + 1 < len(words) else None
    if after is None or (after.speaker != word.speaker and after.speaker is not None):
        return SPEAKER
    if after.start - word.end >= LONG_PAUSE_MS:  # a caption does not sit through silence
        return SPEAKER
    return _text_boundary(word.text, after.text)


def _laid_boundary(texts: Sequence[str], index: int) -> int:
    """:func:`boundary` within a caption's laid-out texts (no speakers, no pauses)."""
    if index + 1 >= len(texts):
        return SPEAKER
    return _text_boundary(texts[index], texts[index + 1])


def _text_boundary(text: str, after: str) -> int:
    """How strong a break between two words is by their texts alone."""
    if _SENTENCE_END.search(text):
        return SENTENCE
    if _bare(text) in _LEANERS and not _CLAUSE_END.search(text):
        return INSIDE
    if _CLAUSE_END.search(text) or _bare(after) in _CLAUSE_STARTERS:
        return CLAUSE
    if _bare(after) in _PHRASE_STARTERS:
        return PHRASE
    return NONE


def _bare(text: str) -> str:
    return text.strip("\"'“”‘’()[],.;:!?—–-").lower()


def _caption_end(words: Sequence[Word], start: int, style: CaptionStyle, mark: int) -> int:
    """Where the caption starting at ``start`` ends (exclusive): the fitting run of
    words that ends at the strongest boundary, the longest among equals."""
    room = style.chars_per_line * style.lines
    if style.chars_per_caption is not None:
        room = min(room, style.chars_per_caption)
    longest_ms = int(style.max_seconds * 1000)
    best, best_key = start + 1, (-3, False, 0)
    length = mark - 1
    # The words so far wrapped greedily, a word at a time (what _fits does from the
    # start for each end: the same lines, without laying them out again).
    lines, width = 1, -1
    for end in range(start + 1, len(words) + 1):
        word = words[end - 1]
        length += len(word.text) + 1
        too_long = word.end - words[start].start > longest_ms
        lines, width = _wrapped(lines, width, len(word.text) + (mark if end == start + 1 else 0),
                                style.chars_per_line)  # fmt: skip
        if end > start + 1 and (length > room or too_long or lines > style.lines):
            break
        strength = boundary(words, end - 1)
        short = length * 3 < room and strength < SENTENCE
        # Of two equal ends, one whose lines break inside a phrase loses.
        # An end whose lines must break inside a phrase counts as no better than a
        # phrase end, and loses to one of equal strength whose lines break well.
        lines_ok = strength < NONE or _lines_break_well(words[start:end], style, mark)
        rank = strength if lines_ok or strength == SPEAKER else min(strength, PHRASE)
        key = (-2 if short else rank, lines_ok, end)
        if key >= best_key:
            best, best_key = end, key
        if strength == SPEAKER:
            break
    return best


def _lines_break_well(words: Sequence[Word], style: CaptionStyle, mark: int) -> bool:
    """Whether the words' lines, laid out, break nowhere inside a phrase."""
    texts = [w.text for w in words]
    texts[0] = "#" * mark + texts[0]
    lines = _lines(texts, style)
    if len(lines) == 1:
        return True
    seen = 0
    for line in lines[:-1]:
        seen += len(line.split(" "))
        if _laid_boundary(texts, seen - 1) < NONE:
            return False
    return True


def _fits(sizes: Sequence[int], chars_per_line: int, most_lines: int, begin: int = 0) -> bool:
    """Whether words of these lengths (from ``begin`` on) wrap into ``most_lines``
    lines (greedily: the fewest lines)."""
    lines, width = 1, -1
    for index in range(begin, len(sizes)):  # (_wrapped, inline: this runs per cut)
        size = sizes[index]
        if width >= 0 and width + 1 + size > chars_per_line:
            lines, width = lines + 1, size
            if lines > most_lines:
                return False
        else:
            width = size if width < 0 else width + 1 + size
    return True


def _wrapped(lines: int, width: int, size: int, chars_per_line: int) -> tuple[int, int]:
    """Lines and the last line's width once a word of ``size`` is added (width -1:
    nothing yet)."""
    if width >= 0 and width + 1 + size > chars_per_line:
        return lines + 1, size
    return lines, size if width < 0 else width + 1 + size


def _lines(texts: Sequence[str], style: CaptionStyle) -> tuple[str, ...]:
    """A caption's words as lines: each break at the strongest boundary that leaves
    the rest room, lines as even as that allows."""
    if style.lines == 1 or len(" ".join(texts)) <= style.chars_per_line:
        return (" ".join(texts),)
    sizes = [len(t) for t in texts]
    total = len(" ".join(texts))
    best: tuple[int, int, int] | None = None
    first = -1  # the length of the first line: the words before the cut, spaced
    for cut in range(1, len(texts)):
        first += len(texts[cut - 1]) + 1
        if first > style.chars_per_line:
            break
        if not _fits(sizes, style.chars_per_line, style.lines - 1, cut):
            continue
        strength = _laid_boundary(texts, cut - 1)
        evenness = -abs(first - (total - first - 1))  # against the rest, spaced
        key = (strength, evenness, cut)
        if best is None or key > best:
            best = key
    if best is None:  # a word longer than a line: it is a line of its own
        return (texts[0], *_lines(texts[1:], style)) if len(texts) > 1 else (texts[0],)
    cut = best[2]
    tail = CaptionStyle(style.chars_per_line, style.lines - 1, speakers=False)
    return (" ".join(texts[:cut]), *_lines(texts[cut:], tail))


def _timed(found: list[Caption], style: CaptionStyle) -> list[Caption]:
    """Each caption on screen at least ``min_seconds`` when the next one leaves room,
    never over the next one."""
    shortest = int(style.min_seconds * 1000)
    timed = []
    for index, caption in enumerate(found):
        end = max(caption.end, caption.start + shortest)
        if index + 1 < len(found):
            end = min(end, max(found[index + 1].start, caption.end))
        timed.append(Caption(caption.start, end, caption.lines, caption.speaker))
    return timed
