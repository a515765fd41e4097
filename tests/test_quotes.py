"""Best quotes you can cite: found in the words, with verdicts, from replies as models
write them (preambles, numbering, commentary after the closing quotation mark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.transcript.model import Word, load_saved
from runner.transcript.quotes import (
    NEAR,
    NOT_FOUND,
    REWORDED,
    VERBATIM,
    WordIndex,
    align,
    candidate_quotes,
    match_quotes,
)

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
WORDS = load_saved(WILDFIRES).words
INDEX = WordIndex.of(WORDS)

# Spoken 63,350 to 66,750 ms, inside the window of sentences (59,310 to 85,550 ms) that
# the sentence-window method reported for it.
BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
INVENTED = "We must act now to stop climate change before it is too late for everyone."


def span_of(text: str) -> tuple[int, int]:
    """The times of ``text``'s words in the fixture, found by plain search."""
    wanted = text.split()
    for i in range(len(WORDS) - len(wanted) + 1):
        if [w.text for w in WORDS[i : i + len(wanted)]] == wanted:
            return WORDS[i].start, WORDS[i + len(wanted) - 1].end
    raise AssertionError(f"{text!r} is not in the fixture")


def test_a_verbatim_quote_has_its_own_words_times() -> None:
    quote = align(BALTIMORE, INDEX)
    assert quote.verdict == VERBATIM
    assert (quote.start, quote.end) == span_of(BALTIMORE) == (63_350, 66_750)
    assert quote.text == BALTIMORE


def test_case_punctuation_and_a_changed_word_still_find_the_words() -> None:
    quote = align(
        "the levels OUTSIDE right now, in Baltimore, are considered very unhealthy", INDEX
    )
    assert quote.verdict == NEAR
    assert 90 <= quote.score < 100
    assert (quote.start, quote.end) == span_of(BALTIMORE)


@pytest.mark.parametrize(
    ("proposed", "verdict"),
    [
        ("Right now the air in Baltimore is considered to be unhealthy to breathe", REWORDED),
        (INVENTED, NOT_FOUND),
        ("Canada has promised to send more firefighters to the border next week.", NOT_FOUND),
    ],
)
def test_reworded_and_invented_quotes_are_told_apart(proposed: str, verdict: str) -> None:
    quote = align(proposed, INDEX)
    assert quote.verdict == verdict
    if verdict == NOT_FOUND:
        assert (quote.start, quote.end, quote.text) == (None, None, None)
    else:
        assert quote.text is not None
        assert "Baltimore" in quote.text


def test_preambles_numbering_and_commentary_are_not_quotes() -> None:
    reply = (
        "Here are the 3 best quotes from this recording:\n\n"
        f'1. "{BALTIMORE}" - this one captures how serious the smoke is.\n'
        "2. “the fire season is starting earlier and lasting longer” (a key point)\n"
        "These quotes show the human side of the story.\n"
    )
    assert candidate_quotes(reply) == [
        BALTIMORE,
        "the fire season is starting earlier and lasting longer",
    ]


def test_quotes_without_quotation_marks_are_read_line_by_line() -> None:
    reply = f"Here are the best quotes:\n- {BALTIMORE}\n- It is.\n(All three are spoken.)"
    assert candidate_quotes(reply) == [BALTIMORE]  # "It is." is too short to be a quote


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps([BALTIMORE]),
        "```json\n" + json.dumps({"quotes": [{"quote": BALTIMORE}]}) + "\n```",
    ],
)
def test_a_json_reply_gives_its_quotes(reply: str) -> None:
    assert candidate_quotes(reply) == [BALTIMORE]


def test_the_best_quotes_come_first_and_invented_ones_stay_flagged() -> None:
    reply = f'"{INVENTED}"\n"{BALTIMORE}"\n"the fire season is starting earlier"'
    quotes = match_quotes(reply, WORDS, count=2)
    assert [q.verdict for q in quotes] == [VERBATIM, VERBATIM, NOT_FOUND]
    assert quotes[2].quote == INVENTED


def test_a_quote_spanning_two_speakers_turns_is_still_one_span() -> None:
    words = (
        Word("Is", 0, 100, speaker="A"),
        Word("it", 100, 200, speaker="A"),
        Word("harmful?", 200, 600, speaker="A"),
        Word("It", 900, 1000, speaker="B"),
        Word("is,", 1000, 1200, speaker="B"),
        Word("it", 1200, 1300, speaker="B"),
        Word("is.", 1300, 1500, speaker="B"),
    )
    quote = align("Is it harmful? It is, it is.", WordIndex.of(words))
    assert (quote.verdict, quote.start, quote.end) == (VERBATIM, 0, 1500)


# --- in a run ---------------------------------------------------------------------------

RECIPE = """\
version: 1
name: quotes
inputs:
  - transcript_file: saved.json
tasks:
  best:
    quotes: {{count: 2{extra}}}
"""


def run_quotes(served: Path, run_cli: RunCli, extra: str = "") -> tuple[int, str, Any, Any]:
    (served / "saved.json").write_text(WILDFIRES.read_text())
    (served / "recipe.yaml").write_text(RECIPE.format(extra=extra))
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    output = json.loads((served / "out" / "quotes" / "saved" / "best.json").read_text())
    manifest = json.loads((served / "out" / "run.json").read_text())
    return code, err, output, manifest["items"][0]["tasks"][0]


PARAPHRASED = "Right now the air in Baltimore is considered to be unhealthy to breathe"


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = lambda request: (
        f'Here are the 2 best quotes:\n1. "{BALTIMORE}" (the core warning)\n'
        f'2. "{PARAPHRASED}"\n3. "{INVENTED}"'
    )
    return api


def test_a_quotes_task_fails_when_too_few_quotes_are_the_transcripts_words(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, _, output, task = run_quotes(served, run_cli)
    assert code == 1
    assert [q["verdict"] for q in output] == [VERBATIM, REWORDED, NOT_FOUND]
    assert output[0]["quote"] == BALTIMORE  # the commentary after it is gone
    assert (output[0]["start"], output[0]["end"]) == (63_350, 66_750)
    assert output[2]["start"] is None
    assert task["status"] == "failed"
    assert task["error"].startswith(
        "1 of the 2 quotes asked for are verbatim or near-verbatim quotes of the transcript; "
        f"{PARAPHRASED!r} is paraphrase"
    )
    assert "best.json" in task["error"]


def test_allowing_paraphrases_counts_reworded_quotes(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, err, output, task = run_quotes(served, run_cli, ", allow_paraphrases: true")
    assert code == 0, err
    assert task["status"] == "ok"
    assert [q["verdict"] for q in output] == [VERBATIM, REWORDED, NOT_FOUND]


def test_numbers_and_words_that_look_like_labels_are_kept() -> None:
    reply = (
        "Quoted numbers show the fire is spreading fast\n"
        "1.5 million people were told to stay inside\n"
        "2) the second one is here"
    )
    assert candidate_quotes(reply) == [
        "Quoted numbers show the fire is spreading fast",
        "1.5 million people were told to stay inside",
        "the second one is here",
    ]


def test_a_curly_apostrophe_is_still_verbatim() -> None:
    said = "we're seeing more frequent fires"
    quote = align(said.replace("'", "\u2019"), INDEX)
    assert quote.verdict == VERBATIM


def test_a_quotes_reply_that_falls_short_is_asked_again_not_replayed(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, *_ = run_quotes(served, run_cli)
    assert code == 1
    asked = len(fake.gateway.calls)
    code, *_ = run_quotes(served, run_cli)
    assert code == 1
    assert len(fake.gateway.calls) == asked + 1  # not replayed from the cache
