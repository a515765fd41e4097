"""Real costs: usage times the user's price table, in run.json, the summary and plan.

A model without a price is unknown, never $0.00; what a run did not pay for (the
ledger, the cache) costs nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.recipe.prices import PriceTableError, format_usd, price_table

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
SPEECH_PRICE = 0.21  # per hour
SONNET = {"input": 3.0, "output": 15.0}  # per million tokens

RECIPE = """\
version: 1
name: priced
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - transcript_file: saved.json
prices:
  transcription_per_hour: {{universal-3-5-pro: {speech}}}
  llm_per_million_tokens:
    claude-sonnet-4-6: {{input: {input}, output: {output}}}
tasks:
  summary:
    prompt: "Summarize: {{{{ transcript.text }}}}"
  headline:
    model: gpt-4.1
    prompt: "A headline: {{{{ transcript.text[:200] }}}}"
"""


def write_recipe(folder: Path) -> None:
    shutil.copy(WILDFIRES, folder / "saved.json")
    (folder / "recipe.yaml").write_text(
        RECIPE.format(speech=SPEECH_PRICE, input=SONNET["input"], output=SONNET["output"])
    )


def manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "out" / "run.json").read_text())
    return data


def test_run_json_costs_are_usage_times_the_price_table(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    write_recipe(served)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    report = manifest(served)
    items = {i["item"]: i for i in report["items"]}
    board = items["board-meeting"]
    assert board["submitted"] is True
    assert board["speech_model"] == "universal-3-5-pro"
    expected_speech = board["audio_duration"] / 3600 * SPEECH_PRICE
    assert board["transcription_cost_usd"] == pytest.approx(expected_speech)
    assert items["saved"]["transcription_cost_usd"] == 0.0  # a saved transcript costs nothing

    known, summaries_asked = 0.0, 0
    for item in items.values():
        for task in item["tasks"]:
            if not task["asked"]:  # the same prompt twice: the second reply came from the first
                assert task["cost_usd"] == 0.0
            elif task["task"] == "summary":
                expected = (
                    task["input_tokens"] * SONNET["input"]
                    + task["output_tokens"] * SONNET["output"]
                ) / 1_000_000
                assert task["input_tokens"] > 0
                assert task["cost_usd"] == pytest.approx(expected)
                known += expected
                summaries_asked += 1
            else:  # gpt-4.1 is not in the table: unknown, not free
                assert task["cost_usd"] is None
    assert summaries_asked == 1
    summary = report["summary"]
    assert summary["cost_usd"] == pytest.approx(expected_speech + known, abs=1e-6)
    assert summary["cost_unknown_for"] == ["gpt-4.1"]
    assert f"cost: at least {format_usd(expected_speech + known)}" in err
    assert "unknown for gpt-4.1 (no price in your table)" in err


def test_a_price_file_completes_the_table_and_a_rerun_costs_nothing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    write_recipe(served)
    (served / "prices.yaml").write_text(
        "llm_per_million_tokens:\n  gpt-4.1: {input: 2.0, output: 8.0}\n"
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain", "--prices", "prices.yaml")
    assert code == 0, err
    first = manifest(served)["summary"]
    assert first["cost_unknown_for"] == []
    assert first["cost_usd"] > 0
    assert f"cost: {format_usd(first['cost_usd'])} (transcription" in err

    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain", "--prices", "prices.yaml")
    assert code == 0, err
    again = manifest(served)["summary"]
    assert (again["cost_usd"], again["cost_unknown_for"]) == (0.0, [])  # ledger and cache
    assert "cost: $0.00 (transcription $0.00, LLM $0.00)" in err


def test_features_the_recipe_enables_add_their_price_per_hour(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """speaker_labels is on, priced in the file; entity_detection is priced but off;
    punctuate is on but not priced, so it adds nothing."""
    write_recipe(served)
    text = (served / "recipe.yaml").read_text()
    text = text.replace(
        "prices:", "transcription: {speaker_labels: true, punctuate: true}\nprices:"
    )
    (served / "recipe.yaml").write_text(text)
    (served / "prices.yaml").write_text(
        "transcription_features_per_hour: {speaker_labels: 0.02, entity_detection: 0.08}\n"
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain", "--prices", "prices.yaml")
    assert code == 0, err
    board = next(i for i in manifest(served)["items"] if i["item"] == "board-meeting")
    expected = board["audio_duration"] / 3600 * (SPEECH_PRICE + 0.02)
    assert board["transcription_cost_usd"] == pytest.approx(expected)


def test_a_feature_price_applies_only_where_the_option_is_on() -> None:
    table = price_table(
        {
            "transcription_per_hour": {"universal-2": 0.15},
            "transcription_features_per_hour": {"speaker_labels": 0.02, "redact_pii": 0.08},
        }
    )
    hour = 3600.0
    assert table.transcription("universal-2", hour) == pytest.approx(0.15)  # no options
    on = table.enabling({"speaker_labels": True, "redact_pii": False, "punctuate": True})
    assert on.transcription("universal-2", hour) == pytest.approx(0.17)
    assert on.transcription("universal-3-5-pro", hour) is None  # the model is unpriced
    # The file's table (prices, no options) merged into the recipe's keeps its options.
    recipe = price_table({"transcription_per_hour": {"universal-2": 0.15}}).enabling(
        {"redact_pii": True}
    )
    merged = recipe.merged(price_table({"transcription_features_per_hour": {"redact_pii": 0.1}}))
    assert merged.transcription("universal-2", hour) == pytest.approx(0.25)


def test_without_a_price_table_the_cost_is_unknown(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    write_recipe(served)
    text = (served / "recipe.yaml").read_text()
    start, end = text.index("prices:"), text.index("tasks:")
    (served / "recipe.yaml").write_text(text[:start] + text[end:])
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    summary = manifest(served)["summary"]
    assert summary["cost_usd"] is None
    assert summary["cost_unknown_for"] == ["claude-sonnet-4-6", "gpt-4.1", "universal-3-5-pro"]
    assert "cost: unknown (no price table" in err


def test_plan_estimates_known_parts_and_says_unknown(tmp_path: Path, run_cli: RunCli) -> None:
    write_recipe(tmp_path)
    code, out, err = run_cli("plan", str(tmp_path / "recipe.yaml"), "--format", "json")
    assert code == 0, err
    costs = json.loads(out)["costs"]
    # The URL's length is not known before the run, so its transcription is not counted.
    assert costs["transcription_usd"] == 0.0
    assert costs["llm_input_usd"] is None  # gpt-4.1 has no price
    assert costs["unpriced_models"] == ["gpt-4.1"]
    code, out, _ = run_cli("plan", str(tmp_path / "recipe.yaml"))
    assert "LLM input unknown" in out
    assert "No price for: gpt-4.1." in out


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"llm_per_million_tokens": {"m": {"input": -1, "output": 2}}}, "cannot be negative"),
        ({"llm_per_million_tokens": {"m": 3}}, "expected {input: USD, output: USD}"),
        ({"transcription_per_hour": {"u": "cheap"}}, "expected a price in dollars"),
        ({"per_hour": {}}, "unknown key 'per_hour'"),
        ({"transcription_features_per_hour": {"speaker_labels": True}}, "expected a price"),
    ],
)
def test_a_bad_price_table_says_which_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(PriceTableError, match=message):
        price_table(table, "prices.yaml")


def test_a_bad_price_file_is_a_usage_error(tmp_path: Path, run_cli: RunCli) -> None:
    write_recipe(tmp_path)
    (tmp_path / "prices.yaml").write_text("llm_per_million_tokens:\n  m: {input: x, output: 1}\n")
    code, _, err = run_cli(
        "plan", str(tmp_path / "recipe.yaml"), "--prices", str(tmp_path / "prices.yaml")
    )
    assert code == 2
    assert "llm_per_million_tokens.m.input: expected a price in dollars" in err
    assert "Traceback" not in err


def test_what_got_no_result_costs_nothing_and_missing_usage_is_named() -> None:
    from runner.recipe.prices import LlmPrice, PriceTable
    from runner.results.manifest import price
    from runner.results.records import ItemRecord, TaskRecord, Totals

    table = PriceTable({"universal-3-5-pro": 0.21}, {"m": LlmPrice(1.0, 2.0)})
    record = ItemRecord("r", "i", "s", "url", "failed", submitted=True)  # the job failed
    record.tasks = [
        TaskRecord("no_reply", "failed", asked=True, model_requested="m"),  # a 400, no reply
        TaskRecord("no_usage", "ok", asked=True, model_requested="m", model_used="m"),
        TaskRecord("priced", "ok", asked=True, model_used="m", input_tokens=10, output_tokens=5),
    ]
    price(record, table)
    assert record.transcription_cost_usd == 0.0
    assert [t.cost_usd for t in record.tasks] == [0.0, None, pytest.approx(20 / 1_000_000)]
    totals = Totals()
    totals.add(record)
    assert totals.unpriced == {"m (usage not reported)"}


def test_an_infinite_price_is_a_located_error(tmp_path: Path, run_cli: RunCli) -> None:
    write_recipe(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        recipe.read_text().replace(f"universal-3-5-pro: {SPEECH_PRICE}", "universal-3-5-pro: .inf")
    )
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert "recipe.yaml:7:3: $.prices: prices.transcription_per_hour.universal-3-5-pro" in out + err
    assert "Traceback" not in out + err


def test_the_example_table_holds_published_prices_and_the_readme_says_what_a_run_costs() -> None:
    """docs/prices.example.yaml has real figures (never a confident $0.00), each with
    its source and the date it was read; the README's typical costs follow from it."""
    from runner.recipe.prices import format_usd, load_price_file

    example = REPO / "docs" / "prices.example.yaml"
    text = example.read_text()
    table = load_price_file(example)
    assert "Read on 2026-12-07" in text
    assert "https://www.assemblyai.com/pricing" in text
    assert table.transcription_per_hour["universal-3-5-pro"] == 0.21
    assert table.transcription_per_hour["universal-2"] == 0.15
    assert all(price > 0 for price in table.transcription_per_hour.values())
    assert all(p.input > 0 and p.output > 0 for p in table.llm_per_million_tokens.values())
    # What README says a run costs: the wildfires interview (282 s) with three tasks
    # of about 1,300 tokens in and 300 out, and an hour of meetings (16,600 tokens).
    interview = table.transcription("universal-3-5-pro", 282.0)
    summary = table.llm("claude-sonnet-4-6", 1300, 300)
    hour = table.transcription("universal-3-5-pro", 3600.0)
    hour_task = table.llm("claude-sonnet-4-6", 16_600, 300)
    assert None not in (interview, summary, hour, hour_task)
    assert interview is not None
    assert summary is not None
    assert hour is not None
    assert hour_task is not None
    item = interview + 3 * summary
    assert (format_usd(interview), format_usd(summary), f"${item:.2f}") == (
        "$0.0164",
        "$0.0084",
        "$0.04",
    )
    readme = (REPO / "README.md").read_text()
    assert f"about ${item:.2f} an item" in readme
    assert f"about ${hour + 3 * hour_task:.2f}" in readme
    assert "docs/prices.example.yaml" in readme
