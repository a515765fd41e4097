"""Benchmark: the two ways a quotes task finds quotes, on the same cases.

Run from the repository root (``match: semantic`` needs the semantic extra; the
embedding model is the extra's own all-MiniLM-L6-v2, on ONNX Runtime, unless ``--model``
names another):

    .venv/bin/python benchmarks/bench_quotes.py [--model PATH]

The cases are proposed quotes for the wildfires interview (recipes/transcripts/
wildfires.json), each with what it is and where it was said: verbatim quotes from the
start, middle and end of the recording (the guide's windowing never reaches the last
three sentences), quotes with a word or two changed, paraphrases, and inventions.

For each method it prints:

- right: cases whose verdict is in the right class (cited: verbatim or near-verbatim;
  paraphrase; not found);
- located: quotes said in the recording whose reported span overlaps where they were said;
- span IoU: the mean overlap of the reported span with the true one (intersection over
  union of the two time ranges; 1.0 is exact), over the located quotes;
- ms/quote: matching time per quote, the model's loading excluded (reported apart); all
  cases are matched in one call, as a task matches its quotes.

It also prints the guide's own method as the seed wrote it (the whole reply embedded,
the nearest ``count`` windows reported as the quotes): its spans are windows, and it
has no verdicts. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.transcript.model import Sentence, Word, load_saved, sentences_from_words  # noqa: E402
from runner.transcript.quotes import NEAR, NOT_FOUND, REWORDED, VERBATIM, Quote  # noqa: E402

TRANSCRIPT = ROOT / "recipes" / "transcripts" / "wildfires.json"
CITED = "cited"
CLASS = {VERBATIM: CITED, NEAR: CITED, REWORDED: REWORDED, NOT_FOUND: NOT_FOUND}


@dataclass(frozen=True)
class Case:
    quote: str
    kind: str  # cited, paraphrase or not found
    said: str | None = None  # the words actually spoken (their span is the truth)


CASES = [
    # Verbatim, from the start, the middle and the end of the recording.
    Case(
        "Smoke from hundreds of wildfires in Canada is triggering air quality alerts "
        "throughout the US",
        CITED,
        "Smoke from hundreds of wildfires in Canada is triggering air quality alerts "
        "throughout the US",
    ),
    Case(
        "The levels outside right now in Baltimore are considered unhealthy.",
        CITED,
        "The levels outside right now in Baltimore are considered unhealthy.",
    ),
    Case(
        "the concentrations of these particles in the air are just much, much, much higher "
        "than we typically see",
        CITED,
        "the concentrations of these particles in the air are just much, much, much higher "
        "than we typically see.",
    ),
    Case(
        "the fire season is starting earlier and lasting longer and we're seeing more "
        "frequent fires",
        CITED,
        "the fire season is starting earlier and lasting longer and we're seeing more "
        "frequent fires.",
    ),
    Case(
        "with climate change moving forward, this is something that is going to happen "
        "more frequently",
        CITED,
        "with climate change moving forward, this is something that is going to happen "
        "more frequently.",
    ),
    Case(
        "Professor DeCarlo, thanks so much for joining us and sharing this expertise with us.",
        CITED,
        "Professor DeCarlo, thanks so much for joining us and sharing this expertise with us.",
    ),
    # A word or two changed.
    Case(
        "The levels outside right now in Baltimore are considered very unhealthy",
        CITED,
        "The levels outside right now in Baltimore are considered unhealthy.",
    ),
    Case(
        "exposure to those high levels can lead to a whole host of health problems",
        CITED,
        "exposure to those high levels can lead to a host of health problems.",
    ),
    Case(
        "I think the fires are going to burn for a bit longer",
        CITED,
        "I think the fires are going to burn for a little bit longer.",
    ),
    # Paraphrases: the passage is there, reworded.
    Case(
        "Right now the air in Baltimore is considered to be unhealthy to breathe",
        REWORDED,
        "The levels outside right now in Baltimore are considered unhealthy.",
    ),
    Case(
        "The youngest children and the elderly are the most vulnerable to the smoke",
        REWORDED,
        "It's the youngest. So children, obviously, whose bodies are still developing, the "
        "elderly who are, you know, their bodies are more in decline",
    ),
    Case(
        "Changing weather patterns will push the smoke away from our region in a few days",
        REWORDED,
        "I think the next couple days we're going to see a shift in that weather pattern "
        "and start to push the smoke away from where we are.",
    ),
    # Inventions.
    Case("We must act now to stop climate change before it is too late for everyone.", NOT_FOUND),
    Case("Canada has promised to send more firefighters to the border next week.", NOT_FOUND),
]


def true_span(words: tuple[Word, ...], said: str) -> tuple[int, int]:
    wanted = said.split()
    for i in range(len(words) - len(wanted) + 1):
        if [w.text for w in words[i : i + len(wanted)]] == wanted:
            return words[i].start, words[i + len(wanted) - 1].end
    raise SystemExit(f"not in the transcript: {said!r}")


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def evaluate(name: str, results: list[Quote], words: tuple[Word, ...], seconds: float) -> str:
    right = located = 0
    overlaps = []
    for case, quote in zip(CASES, results, strict=True):
        right += CLASS[quote.verdict] == case.kind
        if case.said is not None and quote.start is not None and quote.end is not None:
            overlap = iou((quote.start, quote.end), true_span(words, case.said))
            if overlap > 0:
                located += 1
                overlaps.append(overlap)
    said = sum(case.said is not None for case in CASES)
    mean = sum(overlaps) / len(overlaps) if overlaps else 0.0
    per = 1000 * seconds / len(CASES)
    return f"{name:<34} {right:>2}/{len(CASES)}   {located:>2}/{said}    {mean:6.2f}   {per:8.2f}"


def guide_method(sentences: tuple[Sentence, ...], model_path: str) -> str:
    """The seed's own code path: the whole reply embedded, the nearest windows."""
    from runner.transcript.embedding import embedder

    model = embedder(model_path)
    windows = _guide_windows(sentences, 5, 2)
    texts = [" ".join(s.text for s in group) for group in windows]
    reply = "\n".join(f'{n}. "{case.quote}"' for n, case in enumerate(CASES, start=1))
    vectors = model.embed([*texts, reply])
    scores = vectors[:-1] @ vectors[-1]
    best = sorted(range(len(texts)), key=lambda i: -scores[i])[:3]
    covered = windows[-1][-1].end
    return (
        f"{len(windows)} windows, the last ending at {covered / 1000:.1f} s of "
        f"{sentences[-1].end / 1000:.1f} s; the 3 'quotes' it reports are windows of "
        + ", ".join(
            f"{(windows[i][-1].end - windows[i][0].start) / 1000:.1f} s" for i in sorted(best)
        )
    )


def _guide_windows(
    elements: tuple[Sentence, ...], distance: int, stride: int
) -> list[tuple[Sentence, ...]]:
    """The seed's ``sliding_window``, as written (it stops before the last window)."""
    idx, results = 0, []
    while idx + distance < len(elements):
        results.append(elements[idx : idx + distance])
        idx += distance - stride
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the embedding model for match: semantic (a path)")
    args = parser.parse_args()
    transcript = load_saved(TRANSCRIPT)
    words = transcript.words
    sentences = sentences_from_words(words)

    from runner.transcript.quotes import WordIndex, align

    began = time.perf_counter()
    index = WordIndex.of(words)
    by_words = [align(case.quote, index) for case in CASES]
    words_seconds = time.perf_counter() - began

    print(
        f"{len(CASES)} cases on {TRANSCRIPT.name} ({len(words)} words, {len(sentences)} sentences)"
    )
    print(f"{'method':<34} right  located  span IoU  ms/quote")
    print(evaluate("match: words", by_words, words, words_seconds))

    try:
        from runner.transcript.embedding import PACKAGED, embedder
        from runner.transcript.semantic import match_semantic
    except ImportError as exc:  # pragma: no cover - printed, not raised
        print(f"match: semantic: not available ({exc})")
        return
    model_path = args.model or PACKAGED
    began = time.perf_counter()
    embedder(model_path)
    load_seconds = time.perf_counter() - began
    began = time.perf_counter()
    # One reply with every case, as a task matches its quotes: the windows are
    # embedded once.
    reply = "\n".join(f'"{case.quote}"' for case in CASES)
    found = match_semantic(
        reply, sentences, words, count=len(CASES), window=5, overlap=2, model=model_path
    )
    by_quote = {quote.quote: quote for quote in found}
    by_meaning = [by_quote[case.quote] for case in CASES]
    semantic_seconds = time.perf_counter() - began
    print(evaluate("match: semantic (all-MiniLM-L6-v2)", by_meaning, words, semantic_seconds))
    print(f"(loading the embedding model took {load_seconds:.1f} s, once per run)")
    print(f"the guide's method as written: {guide_method(sentences, model_path)}")
    for case, a, b in zip(CASES, by_words, by_meaning, strict=True):
        print(
            f"  {case.kind:<10} words: {a.verdict:<13} semantic: {b.verdict:<13} {case.quote[:50]}"
        )


if __name__ == "__main__":
    main()
