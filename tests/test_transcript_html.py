"""report.html's transcripts (runner.results.transcript_html): paragraphs, marks, and
files of unusual shapes read the same way as the usual ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runner.results.transcript_html import read_shown, transcript_html


def _shown(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "transcript.json"
    path.write_text(json.dumps(document))
    data = read_shown([path])
    assert data is not None
    return transcript_html(data, [])


def _paragraphs(page: str) -> list[str]:
    return re.findall(r'<p><span class="time">[^<]*</span>(.*?)</p>', page)


def test_words_without_punctuation_break_every_200_words(tmp_path: Path) -> None:
    words = [{"text": f"w{n}", "start": n * 100} for n in range(450)]
    paragraphs = _paragraphs(_shown(tmp_path, {"words": words}))
    assert [len(p.split()) for p in paragraphs] == [200, 200, 50]
    assert paragraphs[1].split()[0] == "w200"


def test_five_sentences_make_a_paragraph_and_a_long_one_is_cut(tmp_path: Path) -> None:
    # Four short sentences, then one of 300 words: the paragraph is full at 200 words.
    texts = ["One.", "Two.", "Three.", "Four."] + ["and"] * 299 + ["five.", "Six."]
    words = [{"text": t, "start": n} for n, t in enumerate(texts)]
    paragraphs = _paragraphs(_shown(tmp_path, {"words": words}))
    assert [len(p.split()) for p in paragraphs] == [200, 105]
    assert paragraphs[1].endswith("five. Six.")


def test_quoted_words_are_marked_by_any_overlapping_quote(tmp_path: Path) -> None:
    words = [{"text": t, "start": s} for t, s in [("a", 0), ("b", 10), ("c", 20), ("d", 30)]]
    path = tmp_path / "transcript.json"
    path.write_text(json.dumps({"words": words}))
    data = read_shown([path])
    assert data is not None
    quotes = [{"start": 5, "end": 12}, {"start": 10, "end": 21}, {"start": 40, "end": 30}]
    page = transcript_html(data, quotes)
    assert "a <mark>b</mark> <mark>c</mark> d" in page


def test_a_file_with_a_word_that_is_no_object_shows_the_others(tmp_path: Path) -> None:
    page = _shown(tmp_path, {"words": [{"text": "<hi>", "start": 0}, 7, {"text": "there."}]})
    assert _paragraphs(page) == ["&lt;hi&gt; there."]


def test_speakers_text_and_nothing_readable(tmp_path: Path) -> None:
    utterances = [
        {"speaker": "A", "start": 61_000, "words": [{"text": "Hello.", "start": 61_000}]},
        {"speaker": "B", "start": 62_000, "words": [], "text": "Said without words."},
    ]
    page = _shown(tmp_path, {"utterances": utterances, "words": []})
    assert "<b>Speaker A</b> Hello." in page
    assert "<b>Speaker B</b> Said without words." in page
    assert "1:01" in page
    assert "<p>Only text.</p>" in _shown(tmp_path, {"text": "Only text."})
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_shown([tmp_path / "list.json", tmp_path / "missing.json"]) is None
