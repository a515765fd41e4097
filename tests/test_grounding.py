"""`grounded`: claims and quotes of a result found in the shipped wildfires transcript,
with verdicts and times checked by hand against the transcript's words and sentences
(recipes/transcripts/wildfires.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.transcript.grounding import claims_of, ground, quoted_spans
from runner.transcript.model import load_saved, sentences_from_words
from runner.transcript.quotes import NOT_FOUND, REWORDED, VERBATIM

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
TRANSCRIPT = load_saved(WILDFIRES)
SENTENCES = sentences_from_words(TRANSCRIPT.words)

# Said word for word, 63.35 s to 66.75 s.
VERBATIM_CLAIM = "The levels outside right now in Baltimore are considered unhealthy."
# Said as "And exposure to those high levels can lead to a host of health problems."
# (119.75 s to 123.35 s); the words from "exposure" (120.11 s) on are the match.
REWORDED_CLAIM = "Exposure to high levels of particles can cause many health problems."
# Said as "It's the youngest. So children, obviously, ... the elderly ..." (137.61 s to
# 149.45 s): too reworded for the words, the same by meaning.
MEANT_CLAIM = "The youngest children and the elderly are the most vulnerable to the smoke."
INVENTED_CLAIM = "Canada has promised to send more firefighters to the border next week."

RESULT = f"""## Summary

- {VERBATIM_CLAIM}
- {REWORDED_CLAIM}
- {MEANT_CLAIM}
- {INVENTED_CLAIM}
"""


def test_claims_are_the_results_sentences_without_markup() -> None:
    assert claims_of(RESULT) == [VERBATIM_CLAIM, REWORDED_CLAIM, MEANT_CLAIM, INVENTED_CLAIM]
    assert claims_of("1. Short one.\n**Note:** It was said twice. Then again it was.") == [
        "It was said twice.",
        "Then again it was.",
    ]


def test_quoted_spans_are_text_in_double_quotes_or_a_quotes_tasks_quotes() -> None:
    assert quoted_spans(f'He said "{VERBATIM_CLAIM}" twice.', None) == [VERBATIM_CLAIM]
    assert quoted_spans("", [{"quote": "a quote", "verdict": "verbatim"}]) == ["a quote"]


@pytest.mark.slow  # the packaged embedding model, for the claim only meaning finds
def test_a_verbatim_claim_a_paraphrase_and_an_invention_are_told_apart() -> None:
    verbatim, reworded, meant, invented = ground(claims_of(RESULT), TRANSCRIPT.words, SENTENCES)
    assert (verbatim.verdict, verbatim.start, verbatim.end) == (VERBATIM, 63_350, 66_750)
    assert verbatim.source == VERBATIM_CLAIM
    assert (reworded.verdict, reworded.start, reworded.end) == (REWORDED, 120_110, 123_350)
    assert reworded.source == "exposure to those high levels can lead to a host of health problems."
    assert (meant.verdict, meant.start, meant.end) == (REWORDED, 137_610, 149_450)
    assert meant.similarity is not None
    assert meant.similarity >= 0.6
    assert (invented.verdict, invented.start, invented.end, invented.source) == (
        NOT_FOUND,
        None,
        None,
        None,
    )
    assert invented.similarity is not None
    assert invented.similarity < 0.6


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = lambda request: RESULT
    return api


@pytest.mark.slow  # the packaged embedding model
def test_a_grounded_check_fails_past_max_unsupported_naming_the_invention(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved.json").write_text(WILDFIRES.read_text())
    (served / "recipe.yaml").write_text(
        "version: 1\nname: grounded\ninputs:\n  - transcript_file: saved.json\ntasks:\n"
        "  summary:\n    prompt: 'Summarise: {{ transcript.text }}'\n    expect:\n"
        "      - grounded: {what: claims, max_unsupported: 0}\n"
    )
    code, _, _err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1
    run = json.loads((served / "out" / "run.json").read_text())
    (check,) = run["items"][0]["tasks"][0]["expectations"]
    assert check["passed"] is False
    assert check["score"] == 0.75
    assert check["reason"] == (
        f"3 of 4 claims supported by the transcript; not found: {INVENTED_CLAIM!r}"
    )
    assert [d["verdict"] for d in check["details"]] == [VERBATIM, REWORDED, REWORDED, NOT_FOUND]
    assert check["details"][0]["start_timestamp"] == "00:01:03"


def test_without_the_embedding_model_only_the_words_are_searched() -> None:
    (verbatim, invented) = ground(
        [VERBATIM_CLAIM, INVENTED_CLAIM], TRANSCRIPT.words, SENTENCES, model="no-such-model"
    )
    assert (verbatim.verdict, verbatim.start) == (VERBATIM, 63_350)
    assert (invented.verdict, invented.similarity) == (NOT_FOUND, None)
