"""Graded checks in a run: a judge asked through the reply cache, `similar_to` with its
text from a CSV column, `grounded` on the shipped wildfires transcript, `severity:
warn`, and a task's `pass_rate` across items. Against the fake AssemblyAI, whose
Gateway answers a judge's structured request (tests/fakeapi.py: `judge_responder`).
"""

from __future__ import annotations

import asyncio
import html as _html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, judge_responder

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"

BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
SUMMARY = (
    "Smoke from Canadian wildfires is making the air unhealthy across the US east. "
    f'A professor said: "{BALTIMORE}"'
)

RECIPE = """\
version: 1
name: judged
inputs:
  - list: calls.csv
defaults:
  judge_model: claude-haiku-4-5-20251001
prices:
  llm_per_million_tokens:
    claude-sonnet-4-6: {input: 3, output: 15}
    claude-haiku-4-5-20251001: {input: 1, output: 5}
tasks:
  summary:
    prompt: "Summarise for {{ item.name }}: {{ transcript.text }}"
    expect:
      - judge: The summary says where the smoke comes from, as the transcript does.
        min_score: 0.5
      - similar_to: "{{ item.vars.reference }}"
        min: 0.5
      - grounded: {what: quotes}
"""


def write_run(folder: Path, recipe: str, rows: list[tuple[str, str]]) -> None:
    (folder / "saved.json").write_text(WILDFIRES.read_text())
    lines = ["transcript_file,name,reference"] + [
        f'saved.json,{name},"{reference}"' for name, reference in rows
    ]
    (folder / "calls.csv").write_text("\n".join(lines) + "\n")
    (folder / "recipe.yaml").write_text(recipe)


def manifest(folder: Path) -> Any:
    return json.loads((folder / "out" / "run.json").read_text())


def judge_calls(fake: FakeAssemblyAI) -> list[Any]:
    return [c for c in fake.gateway.calls if "response_format" in c.request]


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    # Tasks get the summary; judges a verdict made from their own request's schema.
    api.gateway.responder = judge_responder(
        lambda output: ("Canadian" in output, 0.9 if "Canadian" in output else 0.2),
        otherwise=lambda request: f"{SUMMARY} ({asked_for(request)})",
    )
    return api


def asked_for(request: dict[str, Any]) -> str:
    """The item a task's prompt names ("Summarise for NAME: ..."), so replies differ."""
    found = re.search(r"for (\w+):", str(request["messages"]))
    return found.group(1) if found else ""


@pytest.mark.slow  # similar_to loads the packaged embedding model (about a second)
def test_judge_similar_to_and_grounded_run_and_a_rerun_sends_nothing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    write_run(
        served,
        RECIPE,
        [
            ("east", "Wildfire smoke from Canada makes the air unhealthy in the eastern US."),
            ("off", "The quarterly sales figures beat the forecast by ten percent."),
        ],
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1, err  # the "off" item's reference means something else
    first = manifest(served)
    by_item = {i["item"]: i["tasks"][0] for i in first["items"]}
    east, off = by_item["east"], by_item["off"]
    assert east["status"] == "ok"
    judge, similar, grounded = east["expectations"]
    assert [c["kind"] for c in east["expectations"]] == ["judge", "similar_to", "grounded"]
    assert judge["passed"]
    assert judge["score"] == 0.9
    assert judge["reason"] == "the output says so"
    assert judge["asked"] == 1
    assert judge["cached"] == 0
    assert judge["model_used"] == "claude-haiku-4-5-20251001"
    assert judge["input_tokens"] > 0
    assert judge["output_tokens"] > 0
    # 1 and 5 USD per million tokens: the judge's own price.
    assert judge["cost_usd"] == pytest.approx(
        (judge["input_tokens"] * 1 + judge["output_tokens"] * 5) / 1e6
    )
    assert similar["passed"]
    assert similar["score"] >= 0.5
    assert similar["reason"].startswith("similarity 0.")
    assert grounded["passed"]
    assert grounded["score"] == 1.0
    (quote,) = grounded["details"]
    assert (quote["verdict"], quote["start"], quote["end"]) == ("verbatim", 63_350, 66_750)
    for check in east["expectations"]:
        assert {"kind", "passed", "score", "reason", "severity", "details"} <= check.keys()
    assert off["status"] == "failed"
    assert off["error"].startswith("expectation failed: similar to '{{ item.vars.reference }}'")
    assert not off["expectations"][1]["passed"]
    assert off["expectations"][1]["score"] < 0.5

    summary = first["summary"]
    assert summary["llm_calls"] == 4  # two summaries, two judges
    tokens = sum(i["tasks"][0]["input_tokens"] for i in first["items"])
    judged = sum(i["tasks"][0]["expectations"][0]["input_tokens"] for i in first["items"])
    assert summary["input_tokens"] == tokens + judged
    assert summary["cost_usd"] == pytest.approx(
        sum(
            i["tasks"][0]["cost_usd"] + i["tasks"][0]["expectations"][0]["cost_usd"]
            for i in first["items"]
        ),
        abs=1e-6,
    )
    rates = {row["check"]: row for row in summary["checks"]}
    assert rates["similar to '{{ item.vars.reference }}' (min 0.5)"]["passed"] == 1
    assert rates["similar to '{{ item.vars.reference }}' (min 0.5)"]["total"] == 2
    sent = len(fake.gateway.calls)
    assert len(judge_calls(fake)) == 2

    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1, err
    assert len(fake.gateway.calls) == sent  # judges and tasks: all from the cache
    again = manifest(served)
    assert again["summary"]["llm_calls"] == 0
    assert again["summary"]["llm_replies_cached"] == 4
    rejudged = {i["item"]: i["tasks"][0]["expectations"][0] for i in again["items"]}
    assert rejudged["east"]["cached"] == 1
    assert rejudged["east"]["asked"] == 0
    assert rejudged["east"]["cost_usd"] == 0.0
    assert rejudged["east"]["reason"] == "the output says so"


JUDGED_ONLY = """\
version: 1
name: judged
inputs:
  - list: calls.csv
defaults:
  judge_model: claude-haiku-4-5-20251001
tasks:
  summary:
    prompt: "Summarise {{ vars.reference }}: {{ transcript.text }}"
    expect:
{checks}
"""


def judged(served: Path, checks: str, rows: list[tuple[str, str]]) -> None:
    write_run(served, JUDGED_ONLY.format(checks=checks), rows)


def test_a_judge_failing_the_output_fails_the_task_with_its_reason(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    fake.gateway.responder = judge_responder(
        lambda output: (False, 0.1), otherwise=lambda request: "Nothing relevant."
    )
    judged(served, "      - judge: Names the source of the smoke.", [("one", "x")])
    code, _, _err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1
    task = manifest(served)["items"][0]["tasks"][0]
    assert task["status"] == "failed"
    assert task["error"] == (
        "expectation failed: judge 'Names the source of the smoke.': the output does not say so"
    )
    (check,) = task["expectations"]
    assert check["details"] == [
        {"pass": False, "score": 0.1, "reason": "the output does not say so"}
    ]
    # The judge saw the output, and not the transcript (the rubric does not ask for it).
    (call,) = judge_calls(fake)
    prompt = call.messages[-1]["content"]
    assert "Nothing relevant." in prompt
    assert "<transcript>" not in prompt


def test_a_warn_check_is_recorded_and_never_fails_the_item(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    fake.gateway.responder = judge_responder(
        lambda output: (False, 0.0), otherwise=lambda request: "A summary."
    )
    checks = "      - judge: Mentions the transcript's speakers by name.\n        severity: warn"
    judged(served, checks, [("one", "x")])
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    task = manifest(served)["items"][0]["tasks"][0]
    assert task["status"] == "ok"
    (check,) = task["expectations"]
    assert (check["passed"], check["severity"]) == (False, "warn")
    # The report's checks matrix marks it a warning (!), with the judge's reason.
    page = (served / "out" / "report.html").read_text()
    cell = page[page.index('id="checks-matrix"') :]
    assert '<td class="warn"' in cell
    assert '<td class="fail"' not in cell
    assert _html.escape(check["reason"], quote=True) in cell
    # The rubric speaks of the transcript: the judge was shown it.
    assert "<transcript>" in judge_calls(fake)[0].messages[-1]["content"]


def test_repeat_asks_each_verdict_once_and_min_pass_decides(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    verdicts = iter([(True, 0.9), (False, 0.3), (True, 0.8)])
    fake.gateway.responder = judge_responder(
        lambda output: next(verdicts), otherwise=lambda request: "A summary."
    )
    checks = "      - judge: Is it a summary?\n        repeat: 3\n        min_pass: 2"
    judged(served, checks, [("one", "x")])
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    (check,) = manifest(served)["items"][0]["tasks"][0]["expectations"]
    assert check["passed"]
    assert check["asked"] == 3
    assert check["reason"].startswith("2 of 3 verdicts pass (min_pass 2)")
    assert [d["pass"] for d in check["details"]] == [True, False, True]
    assert check["score"] == pytest.approx((0.9 + 0.3 + 0.8) / 3, abs=1e-4)
    assert len(judge_calls(fake)) == 3


# --- pass_rate across items -----------------------------------------------------------

PASS_RATE = """\
version: 1
name: rated
inputs:
  - list: calls.csv
tasks:
  summary:
    prompt: "Summarise for {{ vars.reference }}: {{ transcript.text }}"
    pass_rate: 0.9
    expect:
      - contains: smoke
"""


def rated_run(served: Path, fake: FakeAssemblyAI, run_cli: RunCli, failing: int) -> Any:
    rows = [(f"item{n:02}", "bad" if n < failing else "good") for n in range(10)]
    fake.gateway.responder = lambda request: (
        "No idea." if "for bad:" in str(request["messages"]) else "Wildfire smoke."
    )
    write_run(served, PASS_RATE, rows)
    return run_cli("run", "recipe.yaml", "--progress", "plain")


def test_pass_rate_passes_with_one_item_of_ten_failing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, _, err = rated_run(served, fake, run_cli, failing=1)
    assert code == 0, err
    run = manifest(served)
    failed = [i for i in run["items"] if not i["tasks"][0]["expectations"][0]["passed"]]
    assert [i["item"] for i in failed] == ["item00"]  # reported, not failing the run
    assert failed[0]["tasks"][0]["status"] == "ok"
    (row,) = run["summary"]["checks"]
    assert (row["passed"], row["total"], row["rate"], row["pass_rate"]) == (9, 10, 0.9, 0.9)
    assert "pass rate: rated/summary 9 of 10 items (90%), pass_rate 90%: ok" in err
    assert "rated/item00: ok (1 task, 1 check failed: see run.json)" in err


def test_pass_rate_fails_with_two_failing_naming_the_check_and_the_rate(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    code, _, err = rated_run(served, fake, run_cli, failing=2)
    assert code == 1
    assert (
        "below pass_rate: rated/summary: 8 of 10 items pass its checks (80%), below "
        "pass_rate 90%: contains 'smoke': 8 of 10 items (80%)"
    ) in err
    assert manifest(served)["summary"]["checks"][0]["rate"] == 0.8


# --- validate -------------------------------------------------------------------------


def test_validate_says_similar_to_needs_the_embedding_runtime_before_anything_is_paid(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.checks.graded

    monkeypatch.setattr(runner.checks.graded, "embedding_runtime_installed", lambda: False)
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nname: similar\ninputs:\n"
        "  - transcript_id: 6c1b8a4e-1f4e-4c2e-9d2a-3f6f0e8b1a77\n"
        "tasks:\n  summary:\n    prompt: 'Summarise: {{ transcript.text }}'\n    expect:\n"
        "      - similar_to: The team agreed to ship.\n      - grounded: {what: claims}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("validate", "recipe.yaml")
    assert code == 3
    assert (
        "recipe.yaml:9:9: $.tasks.summary.expect[0].similar_to: similar_to compares embeddings "
        "on the semantic extra (ONNX Runtime), which is not installed here: pip install "
        "'transcript-runner[semantic]' where this recipe runs"
    ) in out
    assert "1 error, 1 warning" in out  # grounded still runs: verbatim quotes need no model
    (tmp_path / "recipe.yaml").write_text(
        (tmp_path / "recipe.yaml").read_text().replace("similar_to", "not_contains")
    )
    code, out, _ = run_cli("validate", "recipe.yaml")
    assert code == 0
    assert "recipe.yaml:10:9: warning: $.tasks.summary.expect[1].grounded: grounded finds" in out


# --- the reports ----------------------------------------------------------------------

REPORTED = """\
version: 1
name: reported
inputs:
  - file: call.mp3
defaults:
  judge_model: claude-haiku-4-5-20251001
tasks:
  summary:
    prompt: "Summarise: {{ transcript.text }}"
    expect:
      - judge: Says where the smoke comes from.
      - grounded: {what: quotes}
      - contains: Ottawa
        severity: warn
"""


def test_the_report_shows_scores_reasons_and_each_grounded_quote_with_its_seek_button(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "call.mp3").write_bytes(b"not really audio")
    (served / "recipe.yaml").write_text(REPORTED)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err  # the warn check failed, and fails nothing
    page = (served / "out" / "report.html").read_text()
    assert "✓ expect judge &#x27;Says where the smoke comes from.&#x27; " in page
    assert "score 0.9</span>: the output says so" in page
    assert "⚠ expect contains &#x27;Ottawa&#x27;: the result does not contain" in page
    # The grounded quote, with its ▶ at its words' time and its verdict.
    assert (
        'data-start="63350">▶ 00:01:03</button>“The levels outside right now in Baltimore '
        'are considered unhealthy.” <span class="time">verbatim</span>'
    ) in page
    assert "<mark>" in page  # marked in the transcript
    assert "<h3>Checks</h3>" in page


def test_junit_and_the_step_summary_show_each_checks_rate_and_the_failed_gate(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = served / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    rows = [(f"item{n:02}", "bad" if n < 2 else "good") for n in range(10)]
    fake.gateway.responder = lambda request: (
        "No idea." if "for bad:" in str(request["messages"]) else "Wildfire smoke."
    )
    write_run(served, PASS_RATE, rows)
    code, _, _ = run_cli("run", "recipe.yaml", "--progress", "plain", "--junit", "junit.xml")
    assert code == 1
    junit = (served / "junit.xml").read_text()
    assert 'classname="rated.pass_rate" name="summary pass_rate 90%"' in junit
    assert (
        'message="rated/summary: 8 of 10 items pass its checks (80%), below pass_rate 90%: '
        'contains \'smoke\': 8 of 10 items (80%)" type="pass_rate"'
    ) in junit
    # An item's failed check under a pass_rate is reported, not a failed test case.
    assert '<property name="check: contains \'smoke\'" value="fail: the result does not' in junit
    assert 'failures="1"' in junit
    summary = step.read_text()
    assert "| rated | summary | `contains 'smoke'` | 8 / 10 | 80% | 90% ❌ |" in summary
    from runner.results.ci.annotations import annotations

    found = annotations(manifest(served))
    assert found[0].startswith(
        "::error file=recipe.yaml,line=10,title=pass rate below pass_rate in summary::"
        "rated/summary: 8 of 10 items pass its checks (80%25)"  # % escaped
    )
    # Each item's failed check is a warning: the rate decides.
    assert found[1].startswith("::warning file=recipe.yaml,line=10,")
    assert len(found) == 2
    assert "- pass rate: rated/summary: 8 of 10 items pass its checks (80%)" in summary


def test_review_shows_each_checks_rate_before_and_after() -> None:
    from runner.results import review as out

    judge = "judge 'Names the owner of each action.'"

    def side(passed: bool, warned: bool = True) -> out.Outcome:
        return out.Outcome(
            "ok",
            text="...",
            expectations=(
                out.Expectation(judge, passed, "" if passed else "no owner"),
                out.Expectation("contains 'Owner'", warned, failing=False),
            ),
        )

    items = (
        out.ItemComparison("a", side(True), side(True)),
        out.ItemComparison("b", side(True), side(False, warned=False)),
        out.ItemComparison("c", side(False), side(False)),
    )
    task = out.TaskComparison("actions", out.CHANGED, "its request changed", items)
    (rate, _) = task.rates()
    assert (rate[0], rate[1].words(), rate[2].words()) == (judge, "2 of 3 (67%)", "1 of 3 (33%)")
    review = out.Review("base", "head", [out.RecipeReview("calls", "calls.yaml", tasks=[task])])
    text = out.review_markdown(review)
    assert f"| `{judge}` | 2 of 3 (67%) | 1 of 3 (33%) |" in text
    assert "| `contains 'Owner'` | 3 of 3 (100%) | 2 of 3 (67%) |" in text
    # b regressed on the judge; a warn check failing is not a regression.
    assert review.regressions() == [f"calls/actions/b: expect {judge}: no owner"]
    rates = out.review_json(review)["recipes"][0]["tasks"][0]["rates"]
    assert rates[0]["head"] == {"passed": 1, "total": 3, "rate": 0.3333}


def test_the_record_docs_checks_shows_has_exactly_the_fields_of_a_check() -> None:
    import dataclasses

    from runner.results.records import ExpectationRecord

    page = (REPO / "docs" / "checks.md").read_text()
    shown = page.split("## What `run.json` records")[1].split("```json\n")[1].split("```")[0]
    fields = [f.name for f in dataclasses.fields(ExpectationRecord)]
    assert list(json.loads(shown)) == fields
    table = page.split("## What `run.json` records")[1]
    assert all(f"`{name}`" in table for name in fields)


def test_the_shipped_graded_summary_runs_and_a_rerun_sends_nothing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    import shutil

    shutil.copytree(REPO / "recipes", served / "recipes")
    said = (
        "Smoke from hundreds of wildfires in Canada is triggering air quality alerts "
        "throughout the US. "
        f'A professor said: "{BALTIMORE}"'
    )
    fake.gateway.responder = judge_responder(
        lambda output: (True, 0.9), otherwise=lambda request: said
    )
    code, _, err = run_cli("run", "recipes/graded-summary.yaml", "--progress", "plain")
    assert code == 0, err
    (task,) = manifest(served)["items"][0]["tasks"]
    assert [(c["kind"], c["passed"]) for c in task["expectations"]] == [
        ("judge", True),
        ("grounded", True),
        ("grounded", True),
    ]
    # "A professor said: ..." is not the guest's words: the quote in it is, reworded.
    assert [d["verdict"] for d in task["expectations"][2]["details"]] == [
        "verbatim",
        "paraphrase",
    ]
    sent = len(fake.gateway.calls)
    assert sent == 2
    assert run_cli("run", "recipes/graded-summary.yaml", "--progress", "plain").exit_code == 0
    assert len(fake.gateway.calls) == sent


def test_plan_counts_the_judges_calls_and_knows_them_cached_after_a_run(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    checks = "      - judge: Is it a summary?\n        repeat: 2"
    judged(served, checks, [("one", "x"), ("two", "y")])
    code, out, _ = run_cli("plan", "recipe.yaml", "--format", "json")
    assert code == 0
    before = json.loads(out)
    assert (before["llm_calls"], before["llm_cached"]) == (6, 0)  # 2 tasks, 2 × 2 verdicts
    run_cli("run", "recipe.yaml", "--progress", "plain")
    code, out, _ = run_cli("plan", "recipe.yaml", "--format", "json")
    after = json.loads(out)
    assert (after["llm_calls"], after["llm_cached"]) == (0, 6)


CLAIMED = """\
version: 1
name: claimed
inputs:
  - file: team-sync.wav
tasks:
  summary:
    prompt: "Summarise: {{ transcript.text }}"
    expect:
      - grounded: {what: claims}
"""
SMOKE = (
    "Smoke from hundreds of wildfires in Canada is triggering air quality alerts throughout the US."
)


@pytest.mark.slow  # a browser
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason=".ci/run installs chromium (Debian's package)"
)
async def test_a_person_clicks_a_grounded_claims_seek_button_in_the_report(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    from browser import Browser

    # The fake transcribes any recording as the wildfires interview; the claim is its
    # first sentence, said from 0.24 s.
    shutil.copy(REPO / "recipes" / "audio" / "team-sync.wav", served / "team-sync.wav")
    fake.gateway.responder = lambda request: f"- {SMOKE}"
    (served / "recipe.yaml").write_text(CLAIMED)
    code, _, err = await asyncio.to_thread(run_cli, "run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    async with Browser() as browser:
        await browser.open(served / "out" / "report.html")
        seek = "document.querySelector('.check + ul button.seek')"
        assert int(await browser.evaluate(f"{seek}.dataset.start")) == 240
        await browser.evaluate(f"{seek}.click()")
        player = f"document.getElementById({seek}.dataset.player)"
        for _ in range(40):  # a loaded machine may take a moment to load the media
            at = await browser.evaluate(f"{player}.currentTime")
            if at == pytest.approx(0.24, abs=0.05):
                break
            await asyncio.sleep(0.05)
        assert at == pytest.approx(0.24, abs=0.05)
        marked = await browser.evaluate(
            "[...document.querySelectorAll('mark')].map(m => m.textContent).join(' ')"
        )
        assert marked.startswith("Smoke from hundreds of wildfires")
        assert browser.errors == []


def test_llm_url_sends_the_judges_there_too(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakeapi import serve_in_thread
    from fakelocal import FakeLocalLLM

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    (tmp_path / "saved.json").write_text(WILDFIRES.read_text())
    (tmp_path / "recipe.yaml").write_text(
        "version: 1\nname: local\ninputs:\n  - transcript_file: saved.json\n"
        "defaults:\n  judge_model: claude-haiku-4-5-20251001\n"
        "tasks:\n  summary:\n    prompt: 'Summarise: {{ transcript.text }}'\n    expect:\n"
        "      - judge: Is it a summary?\n"
    )
    local = FakeLocalLLM("llama-server")
    local.responder = lambda body: (
        '{"pass": true, "score": 1, "reason": "it is"}'
        if "response_format" in body
        else "A summary."
    )
    with serve_in_thread(local):  # type: ignore[arg-type]
        code, _, err = run_cli(
            "run", "recipe.yaml", "--llm-url", f"{local.base_url}/v1", "--progress", "plain"
        )
    assert code == 0, err
    (check,) = json.loads((tmp_path / "out" / "run.json").read_text())["items"][0]["tasks"][0][
        "expectations"
    ]
    assert (check["passed"], check["provider"], check["asked"]) == (True, "llm-url", 1)
    assert len(local.requests) == 2  # the task and its judge, none to AssemblyAI
