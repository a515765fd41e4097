"""`plan`'s forecast: how long a run takes and which limit binds it.

Why: a large run is bound by the Gateway's requests a minute per model, not by our
code; a non-coder adding a third task to a nightly recipe must see that the run now
takes longer, and whether it still fits the CI job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RunCli

from runner.execute.forecast import Demand, duration_text, forecast, parse_duration
from runner.execute.plan_text import forecast_text
from runner.store import Store

IDS = [f"6c1b8a4e-1f4e-4c2e-9d2a-{n:012d}" for n in range(100)]


def write_recipe(folder: Path, *, limits: str = "", timeouts: str = "") -> Path:
    rows = "\n".join(json.dumps({"transcript_id": tid}) for tid in IDS)
    (folder / "calls.jsonl").write_text(rows + "\n")
    recipe = folder / "nightly.yaml"
    recipe.write_text(
        "version: 1\nname: nightly\ninputs: [{list: calls.jsonl}]\n"
        + limits
        + timeouts
        + "tasks:\n"
        "  summary: {model: claude-sonnet-4-6, prompt: 'Sum {{ transcript.text }}'}\n"
        "  topics: {model: claude-sonnet-4-6, prompt: 'Topics {{ transcript.text }}'}\n"
        "  title: {model: claude-haiku-4-5-20251001, prompt: 'Title {{ transcript.text }}'}\n"
    )
    return recipe


def test_the_plan_opens_with_the_forecast_and_names_the_bottleneck(
    tmp_path: Path, run_cli: RunCli
) -> None:
    recipe = write_recipe(tmp_path)
    code, out, _ = run_cli("plan", str(recipe), "--state-dir", str(tmp_path / "state"))
    assert code == 0
    first = out.splitlines()[0]
    # 200 requests on one model at the documented 30 a minute: about 7 minutes.
    assert first.startswith("Forecast: about 6 min 47 s")  # and 3 s to start
    assert "bound by llm claude-sonnet-4-6" in first
    assert "llm claude-haiku-4-5-20251001: 100 request(s) at 30/min" in out
    assert "100 item(s)." in out
    assert "nightly/" not in out  # no line per item unless asked
    _, verbose, _ = run_cli("plan", str(recipe), "-v", "--state-dir", str(tmp_path / "state"))
    assert verbose.count("nightly/") == 100


def test_a_deadline_says_whether_it_fits_and_what_to_do(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = write_recipe(tmp_path, timeouts="timeouts: {run: 300}\n")
    _, out, _ = run_cli("plan", str(recipe))
    assert "Deadline 5 min: the run does NOT fit." in out
    assert "split the tasks across models" in out
    assert "--timeout" in out
    _, fits, _ = run_cli("plan", str(recipe), "--deadline", "6h")  # the option wins
    assert "Deadline 6 h: the run fits." in fits
    code, _, err = run_cli("plan", str(recipe), "--deadline", "soon")
    assert code == 2
    assert "give a duration such as 6h" in err


def test_the_json_forecast_and_the_rates_it_uses(tmp_path: Path, run_cli: RunCli) -> None:
    # The recipe's own rate for one model; the last run's headers for the other.
    recipe = write_recipe(tmp_path, limits="limits: {llm_per_minute: {claude-sonnet-4-6: 600}}\n")
    state = tmp_path / "state"
    with Store(state) as store:
        store.rate_put("llm:claude-haiku-4-5-20251001", 60, 60.0)
    code, out, _ = run_cli("plan", str(recipe), "--format", "json", "--state-dir", str(state))
    assert code == 0
    ahead = json.loads(out)["forecast"]
    stages = {stage["name"]: stage for stage in ahead["stages"]}
    assert stages["llm claude-sonnet-4-6"]["per_minute"] == 600
    assert stages["llm claude-sonnet-4-6"]["limit_source"] == "the recipe's limits.llm_per_minute"
    assert stages["llm claude-haiku-4-5-20251001"]["per_minute"] == 60
    assert "x-ratelimit" in stages["llm claude-haiku-4-5-20251001"]["limit_source"]
    # 100 at 60/min (100 s) binds; 200 at 600/min take 20 s.
    assert ahead["bottleneck"] == "llm claude-haiku-4-5-20251001"
    assert ahead["seconds"] == pytest.approx(3 + 99 / (60 * 0.985) * 60, rel=0.01)
    assert ahead["fits"] is None


def test_transcription_binds_when_the_audio_is_long() -> None:
    demand = Demand({"m": 3}, {}, submissions=400, submitted_audio_seconds=0,
                    longest_audio_seconds=3600)  # fmt: skip
    ahead = forecast(demand, recipe_rates={}, learned={}, deadline=3600)
    assert ahead.bottleneck == "transcription"
    assert ahead.seconds == pytest.approx(3 + 2 * 0.3 * 3600)  # two waves of 200 jobs, and start
    assert ahead.fits is True


def test_nothing_to_send_forecasts_nothing() -> None:
    ahead = forecast(Demand({}, {}, 0, 0.0, 0.0), recipe_rates={}, learned={})
    assert (ahead.seconds, ahead.bottleneck) == (0.0, None)
    assert forecast_text(ahead) == ["Forecast: nothing to send."]


def test_requests_with_no_published_rate_are_listed_not_called_nothing() -> None:
    # --llm-url's server: requests to send, and no rate to time them by.
    demand = Demand({}, {"server llm-url qwen": 5}, 0, 0.0, 0.0)
    lines = forecast_text(forecast(demand, recipe_rates={}, learned={}))
    assert lines[0] == "Forecast: no time forecast (no published rate for where these go)."
    assert "server llm-url qwen: 5 request(s)" in lines[1]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h", 21600), ("90m", 5400), ("1h30m", 5400), ("3600", 3600), ("45s", 45), ("1d", 86400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_duration_text() -> None:
    assert duration_text(17 * 3600 + 22 * 60) == "17 h 22 min"
    assert duration_text(250) == "4 min 10 s"
    assert duration_text(12) == "12 s"
    assert parse_duration("0") is None
    assert parse_duration("soon") is None


def test_the_time_left_follows_the_forecast_then_the_pace() -> None:
    from runner.results.progress import SETTLED_AFTER, time_left

    # 600 items at 2 s each by the rates: before any is done, the forecast says it.
    assert time_left(0.0, 0, 600, 2.0) == 1200.0
    # Ahead of the forecast's pace in the first items (a burst): still the rate.
    assert time_left(1.0, 10, 600, 2.0) == 1180.0
    # Once SETTLED_AFTER items are done, the pace so far: a rerun whose replies are
    # cached goes faster than any forecast, and a slow server slower.
    assert SETTLED_AFTER <= 100
    assert time_left(10.0, 100, 600, 2.0) == 50.0
    assert time_left(600.0, 100, 600, 2.0) == 3000.0
    assert time_left(5.0, 0, 10, None) is None  # nothing to say yet
    assert time_left(5.0, 10, 10, 2.0) is None  # done


def test_seconds_per_item_is_the_slowest_models_share(tmp_path: Path) -> None:
    from runner.checks import load_recipe
    from runner.execute.forecast import seconds_per_item

    path = write_recipe(tmp_path)
    recipe = load_recipe(path)
    # Two requests an item on claude-sonnet-4-6 at 30 a minute (paced 1.5 % under).
    assert seconds_per_item([recipe], {}) == pytest.approx(2 * 2 / 0.985)
    learned = {"llm:claude-sonnet-4-6": (600, 60.0), "llm:claude-haiku-4-5-20251001": (60, 60.0)}
    assert seconds_per_item([recipe], learned) == pytest.approx(1 / 0.985)
    # A judge asked three times an item on haiku makes haiku's window the slower one.
    text = path.read_text().replace(
        "  title: {model: claude-haiku-4-5-20251001, prompt: 'Title {{ transcript.text }}'}\n",
        "  title:\n    model: claude-haiku-4-5-20251001\n"
        "    prompt: 'Title {{ transcript.text }}'\n"
        "    expect:\n      - judge: A title.\n        model: claude-haiku-4-5-20251001\n"
        "        repeat: 3\n        min_pass: 2\n",
    )
    path.write_text(text)
    judged = load_recipe(path)
    assert seconds_per_item([judged], {}) == pytest.approx(4 * 2 / 0.985)


def test_the_heartbeat_says_the_time_left() -> None:
    import io

    from runner.results.progress import PlainProgress

    now = [0.0]
    stream = io.StringIO()
    progress = PlainProgress(stream, lambda: now[0], per_item=2.0)
    progress.start(100)
    now[0] = 31.0
    progress.tick({"asking": 4})
    assert "0/100 done · asking 4 · about 3:20 left" in stream.getvalue()
