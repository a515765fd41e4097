"""Transcription quality gates: the word error rate's normaliser (what counts as the same
word), and `expect: [{wer: ...}]` on a recipe's transcripts, run end to end on saved
transcripts (no network, no model: the local engine's own rate is measured in
test_report.py's run of recipes/compare-engines.yaml)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli

from runner.checks import load_recipe
from runner.execute.plan_text import plan_costs, plan_text
from runner.execute.planning import make_plan
from runner.results.ci.summary import step_summary
from runner.results.manifest import load_manifest
from runner.transcript.wer import normalise, word_errors

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("We shipped 25 boxes.", "we shipped twenty-five boxes"),
        ("It's 1,200 dollars", "its one thousand two hundred dollars"),
        ("On the 21st, 3.5% more", "on the twenty first three point five percent more"),
        ("Call 007 — now/later!", "call zero zero seven now later"),
        ("the 2nd and 100th", "the second and one hundredth"),
    ],
)
def test_numbers_case_and_punctuation_are_written_one_way(written: str, said: str) -> None:
    assert normalise(written) == normalise(said)


def test_the_rate_counts_each_kind_of_error_over_the_reference_words() -> None:
    errors = word_errors("So the launch moved to Thursday.", "the lunch moved to Thursday, OK")
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 1, 1)
    assert errors.reference_words == 6
    assert errors.rate == pytest.approx(3 / 6)
    assert word_errors("Twenty five people came.", "25 people came").rate == 0
    assert word_errors("two words", "").rate == 1  # nothing heard: every word missing
    with pytest.raises(ValueError, match="no words"):
        word_errors(" ... ", "anything")


RECIPE = """\
version: 1
name: gates
inputs:
  - list: calls.csv
transcription:
  speech_models: [universal-2]
  expect:
    - wer: {reference: {column: script}, max: 0.15}
output:
  table: results.csv
tasks:
  text:
    export: txt
"""


def test_a_transcript_over_its_max_fails_its_item_and_the_run_goes_on(
    served: Path, run_cli: RunCli
) -> None:
    """Two saved transcripts, each with its script in a CSV column: one is what was said
    (as the transcript's own text, less its punctuation), the other a different text.
    (A list needs the key, so the fake is served; nothing is sent to it.)"""
    tmp_path = served
    shutil.copy(WILDFIRES, tmp_path / "saved.json")
    said = json.loads(WILDFIRES.read_text())["text"]
    rows = [
        {"transcript_file": "saved.json", "name": "right", "script": said.replace(",", "")},
        {"transcript_file": "saved.json", "name": "wrong", "script": "A different meeting."},
    ]
    with (tmp_path / "calls.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "gates.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "gates.yaml", "--progress", "plain", "--junit", "junit.xml")
    assert code == 1, err  # one item failed its gate
    assert "gates/right: ok (1 task, WER 0.000)" in err
    assert "gates/wrong: failed: transcription check failed: assemblyai: wer ≤ 0.15: WER " in err
    manifest = load_manifest(tmp_path / "out" / "run.json")
    records = {item["item"]: item for item in manifest["items"]}
    assert [t["status"] for t in records["wrong"]["tasks"]] == ["ok"]  # its task still ran
    (made,) = records["wrong"]["transcriptions"]
    assert made["wer"] > 1  # the transcript has hundreds of words the reference lacks
    (check,) = made["expectations"]
    assert (check["expect"], check["passed"], check["score"]) == ("wer ≤ 0.15", False, made["wer"])
    assert check["message"].endswith(" extra of 3 words, above 0.15")
    assert records["right"]["transcriptions"][0]["wer"] == 0
    with (tmp_path / "out" / "gates" / "results.csv").open(newline="") as stream:
        table = {row["item"]: row for row in csv.DictReader(stream)}
    assert table["right"]["wer"] == "0.0"
    assert float(table["wrong"]["wer"]) == made["wer"]
    summary = step_summary(manifest)
    assert "| gates | wrong | assemblyai (primary) | " in summary
    assert "❌ wer ≤ 0.15" in summary
    junit = (tmp_path / "junit.xml").read_text()
    # A test case for each item's transcription, failed by its check, and no other.
    assert 'tests="4" failures="1" errors="0"' in junit
    assert '<failure message="WER 288.000: 1 substituted, 0 missing and 863 extra' in junit
    page = (tmp_path / "out" / "report.html").read_text()
    matrix = page[page.index('<table id="checks-matrix">') :]
    # Worst first: the failing item's row before the passing one.
    assert matrix.index(">gates / wrong</a>") < matrix.index(">gates / right</a>")
    assert '<td class="fail" title="transcript · wer ≤ 0.15: WER ' in matrix


COMPARED = """\
version: 1
name: engines
inputs:
  - file: call.wav
prices:
  transcription_per_hour: {universal-2: 0.15, universal-3-5-pro: 0.21}
transcription:
  - speech_models: [universal-3-5-pro]
  - speech_models: [universal-2]
  - engine: faster-whisper
tasks:
  text:
    export: txt
"""


def test_plan_counts_and_prices_every_engine_compared(tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "fixtures" / "audio" / "fox.wav", tmp_path / "call.wav")
    (tmp_path / "engines.yaml").write_text(COMPARED)
    recipe = load_recipe(tmp_path / "engines.yaml")
    assert [block.label for block in recipe.transcriptions] == [
        "assemblyai universal-3-5-pro",
        "assemblyai universal-2",
        "faster-whisper",
    ]
    plan = make_plan([recipe], None, None)
    (item,) = plan.items
    assert item.transcriptions() == ["submit", "submit", "transcribe here"]
    assert plan.submissions == 2
    seconds = item.audio_seconds
    assert seconds is not None
    assert seconds > 1
    costs = plan_costs(plan, {"engines": recipe.prices})
    assert costs.transcription_usd == pytest.approx(seconds / 3600 * (0.21 + 0.15))
    assert "; assemblyai universal-2: submit; faster-whisper: transcribe here; " in plan_text(
        plan, None, per_item=True
    )


def test_a_compared_engine_is_recorded_when_the_primary_fails(
    served: Path, run_cli: RunCli
) -> None:
    """The primary (a speech server nobody listens for) fails the item; AssemblyAI (the
    fake), transcribing beside it, finishes and is recorded: it was paid for."""
    shutil.copy(REPO / "tests" / "fixtures" / "audio" / "fox.wav", served / "call.wav")
    (served / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{file: call.wav}]\n"
        "transcription:\n  - {engine: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  - {speech_models: [universal-2]}\n"
        "tasks:\n  text: {export: txt}\n"
    )
    code, _, err = run_cli("run", "r.yaml", "--progress", "plain", "--junit", "junit.xml")
    assert code == 1, err
    (item,) = load_manifest(served / "out" / "run.json")["items"]
    assert "connection refused by 127.0.0.1:9" in item["error"]
    primary, compared = item["transcriptions"]
    assert (primary["engine"], primary["status"]) == ("openai-compatible", "failed")
    assert (compared["engine"], compared["status"], compared["submitted"]) == (
        "assemblyai",
        "ok",
        True,
    )
    summary = load_manifest(served / "out" / "run.json")["summary"]
    assert summary["transcriptions_submitted"] == 1
    junit = (served / "junit.xml").read_text()
    assert 'tests="2" failures="0" errors="1"' in junit  # the item's error, said once
