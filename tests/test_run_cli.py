"""`transcript-runner run` end to end: the real CLI against the fake AssemblyAI on loopback."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import (
    FakeAssemblyAI,
    Fault,
    after_processing,
    after_processing_reset,
    serve_in_process,
    status,
)
from warmstart import Warm, WarmProcess

from runner.errors import EXIT_USAGE
from runner.store import Store

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"
KEY = "test-key-do-not-leak-7f3a"

RECIPE = """\
version: 1
name: notes
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - transcript_file: saved/wildfires.json
transcription:
  speaker_labels: true
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
  headline:
    needs: [summary]
    prompt: "Headline for: {{ tasks.summary.text }}"
    post_process: [trim]
  actions:
    prompt: "Action items as JSON: {{ transcript.text | truncate_tokens(200) }}"
    json_schema:
      type: object
      required: [items]
      properties: {items: {type: array, items: {type: string}}}
    post_process: [strip-code-fences, json-repair]
"""


def reply_for(request: dict[str, Any]) -> str:
    if "response_format" in request:
        return '```json\n{"items": ["send the minutes",]}\n```'
    content = request["messages"][-1]["content"]
    return "  A headline  " if content.startswith("Headline") else "- point one\n- point two"


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = reply_for
    return api


@pytest.fixture
def served(served: Path) -> Path:
    """The conftest's served fake, with the saved wildfires transcript RECIPE reads."""
    (served / "saved").mkdir()
    shutil.copy(WILDFIRES, served / "saved" / "wildfires.json")
    return served


def subprocess_env(base_url: str) -> dict[str, str]:
    """The environment of a `transcript-runner` subprocess pointed at the served fake."""
    import os

    return {
        **os.environ,
        "ASSEMBLYAI_API_KEY": KEY,
        "ASSEMBLYAI_BASE_URL": base_url,
        "ASSEMBLYAI_LLM_GATEWAY_URL": f"{base_url}/v1",
    }


def write_list_recipe(folder: Path, urls: dict[str, str]) -> None:
    """``notes.yaml`` whose items come from a CSV of customer → URL, named by customer."""
    rows = "".join(f"{url},{customer}\n" for customer, url in urls.items())
    (folder / "calls.csv").write_text("url,customer\n" + rows)
    recipe = RECIPE.replace(
        "  - url: https://media.example.com/board-meeting.mp3\n"
        "  - transcript_file: saved/wildfires.json\n",
        '  - list: calls.csv\n    name: "{{ row.customer }}"\n',
    )
    (folder / "notes.yaml").write_text(recipe)


def manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "out" / "run.json").read_text())
    return data


def test_run_writes_every_output_and_the_manifest(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    item = served / "out" / "notes" / "board-meeting"
    assert (item / "summary.md").read_text() == "- point one\n- point two\n"
    assert (item / "headline.md").read_text() == "A headline\n"
    assert (item / "headline.raw.txt").read_text() == "  A headline  "
    assert json.loads((item / "actions.json").read_text()) == {"items": ["send the minutes"]}
    assert (item / "actions.raw.txt").read_text().startswith("```json")
    assert json.loads((item / "transcript.json").read_text())["status"] == "completed"
    saved_item = served / "out" / "notes" / "wildfires"
    assert (saved_item / "summary.md").is_file()
    assert not (saved_item / "transcript.json").exists()  # it is already on disk

    report = manifest(served)
    assert report["summary"]["outcome"] == "completed"
    assert report["summary"]["items"] == {"ok": 2}
    assert report["summary"]["tasks"] == {"ok": 6}
    by_item = {i["item"]: i for i in report["items"]}
    board = by_item["board-meeting"]
    assert board["submitted"] is True
    assert board["polls"] >= 1
    assert board["audio_duration"] == 282.0
    tasks = {t["task"]: t for t in board["tasks"]}
    assert tasks["headline"]["post_process"] == ["trim"]
    assert tasks["actions"]["post_process"] == ["strip-code-fences", "json-repair", "json-schema"]
    assert tasks["summary"]["input_tokens"] > 0
    assert tasks["summary"]["output"] == "out/notes/board-meeting/summary.md"
    # The chain received the summary's reply; the speaker labels reached the API.
    headline_call = [c for c in fake.gateway.calls if c.messages[-1]["content"].startswith("Head")]
    assert headline_call[0].messages[-1]["content"] == "Headline for: - point one\n- point two"
    assert fake.submissions[0].options["speaker_labels"] is True
    assert fake.submissions[0].options["speech_models"] == ["universal-3-5-pro", "universal-2"]
    assert "Run completed" in err


def test_the_api_key_never_reaches_outputs_or_logs(served: Path, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, out, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0
    assert KEY not in out + err
    for path in (served / "out").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_a_key_the_server_echoes_reaches_no_file_and_no_stream(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Error bodies quoting the Authorization header (as debugging proxies do): the key is
    redacted where the answer is read, so no message, manifest, report or log has it."""
    echo = f"bad request; headers were Authorization: {KEY}, Authorization: Bearer {KEY}"
    fake.faults.add("POST /v1/chat/completions", status(400, body={"error": echo}), times=None)
    fake.faults.add("POST /v2/transcript", status(400, body={"error": echo}), times=1)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(served / "summary.md"))
    (served / "notes.yaml").write_text(RECIPE)
    code, out, err = run_cli("run", "notes.yaml", "--progress", "plain", "--junit", "junit.xml")
    assert code == 1, err
    assert "[REDACTED]" in err
    assert KEY not in out + err
    written = [p for p in served.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert {p.name for p in written} >= {"run.json", "junit.xml", "summary.md"}
    for path in [*written, *(served / ".transcript-runner").glob("*")]:
        assert KEY.encode() not in path.read_bytes(), path


def test_a_key_with_a_line_break_is_a_usage_error(
    served: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "abc\ndef")
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 2
    assert "Traceback" not in err
    assert "ASSEMBLYAI_API_KEY contains a space, a line break" in err


def test_a_failed_transcript_fails_only_its_item(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    fake.fail_audio("broken")
    write_list_recipe(
        served,
        {
            "Acme": "https://media.example.com/good-1.mp3",
            "Globex": "https://media.example.com/broken.mp3",
            "Initech": "https://media.example.com/good-2.mp3",
        },
    )
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 1
    report = manifest(served)
    by_item = {i["item"]: i for i in report["items"]}
    assert by_item["Acme"]["status"] == "ok"
    assert by_item["Initech"]["status"] == "ok"
    failed = by_item["Globex"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        f"transcript {failed['transcript_id']} failed: Download error"
    )
    assert (served / "out" / "notes" / "Initech" / "summary.md").is_file()
    assert "Globex: failed: transcript" in err


def test_failed_task_skips_its_dependents_and_keeps_the_raw_reply(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    fake.gateway.responder = lambda request: "no json here"
    recipe = """\
version: 1
name: strict
inputs: [{transcript_file: saved/wildfires.json}]
tasks:
  actions:
    prompt: "{{ transcript.text }}"
    json_schema: {type: object, required: [items]}
  email:
    needs: [actions]
    prompt: "{{ tasks.actions.text }}"
"""
    (served / "strict.yaml").write_text(recipe)
    code, _, _ = run_cli("run", "strict.yaml", "--progress", "plain")
    assert code == 1
    (item,) = manifest(served)["items"]
    actions, email = item["tasks"]
    assert actions["status"] == "failed"
    assert actions["error"] == (
        "the reply is not valid JSON (Expecting value at line 1 column 1); add "
        "`post_process: [json-repair]` to repair near-JSON (the raw reply is in actions.raw.txt)"
    )
    assert email == {**email, "status": "skipped", "error": "not run because actions failed"}
    assert (served / "out" / "strict" / "wildfires" / "actions.raw.txt").read_text() == (
        "no json here"
    )


@pytest.mark.parametrize(
    "fault", [after_processing_reset(), after_processing(500), after_processing(503)]
)
def test_an_unclear_submission_is_found_in_the_account_not_sent_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, fault: Fault
) -> None:
    """The job was created but the answer was lost: the account's list finds it."""
    fake.faults.add("POST /v2/transcript", fault, times=1)
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.submissions) == 1  # created once, never again
    assert fake.duplicate_submissions() == {}
    done = next(i for i in manifest(served)["items"] if i["item"] == "board-meeting")
    assert done["status"] == "ok"
    assert done["transcript_id"] == fake.submissions[0].transcript_id


def test_a_submission_the_server_refused_with_a_5xx_is_sent_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """A 500 before the job was made: the list shows no job, so sending again is safe."""
    fake.faults.add("POST /v2/transcript", status(500), times=1)
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.submissions) == 1
    assert len(fake.requests_to("POST /v2/transcript")) == 2
    assert len(fake.requests_to("GET /v2/transcript")) >= 1  # looked before sending again


def test_missing_api_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{url: 'https://x.test/a.mp3'}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
    )
    code, out, err = run_cli("run", "r.yaml")
    assert code == 2
    assert "ASSEMBLYAI_API_KEY" in err
    assert "Traceback" not in err
    code, out, err = run_cli("run", "r.yaml", "--dry-run")
    assert code == 0
    assert out == (
        "Forecast: about 9 min 3 s, bound by transcription (an estimate; see docs/cli.md#plan).\n"
        "  transcription: 1 request(s) (200 jobs at once, each about 30% of its audio): 9 min\n"
        "  llm claude-sonnet-4-6: 1 request(s) at 30/min (AssemblyAI's documented default): 0 s\n"
        "r.yaml: 1 item(s) × 1 task(s) (1 asking a model)\n"
        "  a: transcribe the URL; 1 LLM call(s) to send, 0 cached  (https://x.test/a.mp3)\n"
        "Dry run: nothing was sent.\n"
    )


def test_bad_limit_is_a_usage_error(served: Path, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--limit", "lmm=3")
    assert code == 2
    assert err == (
        "error: --limit lmm=3: unknown kind 'lmm'; did you mean 'llm'?; kinds: items, uploads, "
        "transcriptions, polls, llm, lemur, speech\n"
    )


def bulk_report(fake: FakeAssemblyAI) -> dict[str, Any]:
    """What the bulk test checks, computed in the fake's own process."""
    return {
        "duplicates": fake.duplicate_submissions(),
        # With 120 items in flight, a request admitted just before the 429 was read can
        # leave the busy event loop a few hundred ms later (measured up to ~0.35 s, more
        # on a loaded machine). Arrivals in the first 0.8 s of a 2 s window are excused
        # as "already sent"; a client ignoring Retry-After keeps sending all through it.
        "late": [
            round(v.request.at - v.window.sent_at, 3)
            for v in fake.retry_after_violations(grace=0.8)
        ],
        "excused": [
            round(v.request.at - v.window.sent_at, 3) for v in fake.retry_after_violations()
        ],
        "windows": len(fake.retry_after_windows),
        "submissions": len(fake.submissions),
    }


@pytest.mark.slow
def test_hundreds_of_items_with_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """The issue's bar: 429s, 5xx bursts and failed transcripts over a few hundred items."""
    count = 240
    monkeypatch.chdir(tmp_path)
    rows = [f"https://media.example.com/call-{n:03d}.mp3" for n in range(count)]
    (tmp_path / "calls.csv").write_text("url\n" + "\n".join(rows) + "\n")
    (tmp_path / "bulk.yaml").write_text(
        "version: 1\nname: bulk\ninputs: [{list: calls.csv}]\n"
        "tasks:\n  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:200] }}'}\n"
        "  headline: {needs: [summary], prompt: 'Title {{ item.name }}: {{ tasks.summary }}'}\n"
    )
    fake = FakeAssemblyAI(api_key=KEY)
    fake.gateway.responder = reply_for
    failing = {f"call-{n:03d}" for n in range(0, count, 40)}  # 6 transcripts end in error
    for name in failing:
        fake.fail_audio(name)
    fake.faults.add("POST /v1/chat/completions", status(429, retry_after=1), every=150, times=None)
    fake.faults.add("POST /v1/chat/completions", status(502), every=13, times=None)
    fake.faults.add("GET /v2/transcript/*", status(503), every=17, times=None)
    # A 429 says the job was not created, so the submission is retried (a 5xx is not:
    # the job may exist, and a second one would be billed again).
    fake.faults.add("POST /v2/transcript", status(429, retry_after=0.3), every=31, times=None)
    with serve_in_process(fake, bulk_report) as server:
        url = server.base_url  # type: ignore[attr-defined]
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
        monkeypatch.setenv("ASSEMBLYAI_BASE_URL", url)
        monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", f"{url}/v1")
        code, _, err = run_cli(
            "run",
            "bulk.yaml",
            "--progress",
            "plain",
            "--limit",
            "items=120",
            "--limit",
            "polls=32",
            "--limit",
            "llm=16",
        )
    assert code == 1, err
    report = manifest(tmp_path)
    by_item = {i["item"]: i for i in report["items"]}
    assert len(by_item) == count
    for name, item in by_item.items():
        if name in failing:
            assert item["status"] == "failed"
            assert "Download error" in item["error"]
        else:
            assert item["status"] == "ok", (item["error"], item["tasks"])
            assert (tmp_path / "out" / "bulk" / name / "headline.md").is_file()
    observed = server.result
    assert observed["duplicates"] == {}
    assert observed["submissions"] == count
    assert observed["windows"] >= 2
    assert observed["late"] == []
    assert report["summary"]["retries"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_keeps_finished_outputs_and_closes_the_manifest(
    tmp_path: Path, signal_name: str, warm: Warm
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM (a CI cancel) mid-run: exit 130, outputs kept, manifest closed."""
    import signal

    from fakeapi import delay, hold

    fake = FakeAssemblyAI(api_key=KEY)
    fake.gateway.responder = reply_for
    fake.faults.add("POST /v1/chat/completions", delay(0.05), times=2)  # two finish quickly
    # The rest answer only after the signal (a stopping run waits 5 s for them, then goes).
    signalled = tmp_path / "signalled"
    fake.faults.add("POST /v1/chat/completions", hold(signalled), times=None)
    with serve_in_process(fake, lambda f: None) as server:
        url = server.base_url  # type: ignore[attr-defined]
        process = _start_list_run(warm, tmp_path, "slow", 12, url)
        outputs = tmp_path / "out" / "slow"
        # Readiness, not time: the plain progress prints "[k/N] ..." as each item is
        # done (after its outputs are written); signal once two have been, however slow
        # the machine. An early exit ends the read with "" instead of hanging.
        assert process.stderr is not None
        seen = ""
        while not seen.startswith("[2/12]"):
            seen = process.stderr.readline()
            assert seen or process.poll() is None, "the run ended before two items finished"
        process.send_signal(getattr(signal, signal_name))
        signalled.touch()
        _, err = process.communicate(timeout=120)  # a guard against a hang, not a wait
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Run interrupted" in err
    assert len(list(outputs.glob("*/summary.md"))) == 2
    report = manifest(tmp_path)
    assert report["summary"]["outcome"] == "interrupted"
    statuses = sorted(i["status"] for i in report["items"])
    assert statuses.count("ok") == 2
    assert set(statuses) == {"ok", "interrupted"}
    assert not (tmp_path / "out" / "run.json.partial").exists()


def test_rerun_reuses_the_ledger_and_cache_and_offline_replays(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, _, _ = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0
    first = manifest(served)["summary"]
    # Both items have the fake's one transcript, so their requests are identical: the
    # second of each pair is served from the cache within the same run.
    assert (first["transcriptions_submitted"], first["llm_calls"]) == (1, 3)
    assert first["llm_replies_cached"] == 3
    calls = len(fake.gateway.calls)

    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0
    second = manifest(served)["summary"]
    assert second["transcriptions_submitted"] == 0
    assert second["transcriptions_reused"] == 1
    assert (second["llm_calls"], second["llm_replies_cached"]) == (0, 6)
    assert len(fake.submissions) == 1
    assert len(fake.gateway.calls) == calls
    assert "reused: 1 transcripts from the ledger, 6 replies from the cache" in err

    code, _, _ = run_cli("run", "notes.yaml", "--progress", "plain", "--no-cache")
    assert code == 0
    assert manifest(served)["summary"]["llm_calls"] == 6
    assert len(fake.submissions) == 1  # the ledger is used even without the cache


def test_offline_replays_without_a_server_or_key(
    served: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    summary = (served / "out" / "notes" / "board-meeting" / "summary.md").read_text()
    (served / "out" / "notes" / "board-meeting" / "summary.md").unlink()
    monkeypatch.delenv("ASSEMBLYAI_API_KEY")
    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", "http://127.0.0.1:9/v1")
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain", "--offline")
    assert code == 0, err
    assert (served / "out" / "notes" / "board-meeting" / "summary.md").read_text() == summary
    assert manifest(served)["summary"]["llm_calls"] == 0

    (served / "notes.yaml").write_text(RECIPE.replace("Summarize:", "Summarise:"))
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain", "--offline")
    assert code == 1
    failed = [t for i in manifest(served)["items"] for t in i["tasks"] if t["status"] == "failed"]
    assert failed[0]["error"].startswith("--offline: no cached reply for notes/")


def test_rerun_after_ctrl_c_pays_for_nothing_twice(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """A run stopped while its transcription is processing: the rerun reattaches to it.
    (Half a second is ten times what the saved transcript's tasks take.)"""
    from fakeapi import delay

    fake.on_audio("board-meeting", polls_to_completed=10**9)  # never finishes by itself
    # Polls have no pause in test mode: answered at once, the job was polled ~500 times
    # in the half second, each one CPU of the run's and of the fake's.
    fake.faults.add("GET /v2/transcript/*", delay(0.05), times=None)
    (served / "notes.yaml").write_text(RECIPE)
    code, _, _ = run_cli("run", "notes.yaml", "--progress", "plain", "--timeout", "0.5")
    assert code == 1
    stopped = manifest(served)
    assert stopped["summary"]["outcome"] == "timed out"
    assert len(fake.submissions) == 1
    fake.audio_rules.clear()  # the job now finishes on the next poll
    for job in fake.transcripts.values():
        job.polls_to_completed = 0
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.submissions) == 1  # reattached, not resubmitted
    resumed = {i["item"]: i for i in manifest(served)["items"]}
    assert resumed["board-meeting"]["reused"] is True
    assert resumed["wildfires"]["tasks"][0]["cached"] is True  # finished before the stop


def test_cache_commands(served: Path, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    code, listing, _ = run_cli("cache", "ls")
    assert code == 0
    lines = listing.splitlines()
    assert len(lines) == 4  # one transcription, three distinct replies
    assert "  transcript  " in lines[0]
    reply_key = next(line.split()[0] for line in lines if line.endswith("/summary"))
    code, shown, _ = run_cli("cache", "show", reply_key[:8])
    assert code == 0
    entry = json.loads(shown)
    assert entry["label"] in ("notes/board-meeting/summary", "notes/wildfires/summary")
    assert entry["request"]["messages"][0]["content"].startswith("Summarize: ")
    assert entry["reply"]["content"] == "- point one\n- point two"
    assert KEY not in shown
    code, _, err = run_cli("cache", "clear", "--older-than", "7x")
    assert code == 2
    assert "give a number and a unit s, m, h or d" in err
    code, _, err = run_cli("cache", "clear")  # no terminal to ask: refused, nothing lost
    assert code == 2
    assert "pass --yes to do it without a terminal" in err
    assert run_cli("cache", "show", reply_key[:8]).exit_code == 0
    code, out, _ = run_cli("cache", "clear", "--yes")
    assert out == "Removed 3 cached replies and 1 ledger entries.\n"


def test_a_failed_expectation_fails_the_run_but_keeps_the_output(
    served: Path, run_cli: RunCli
) -> None:
    recipe = RECIPE.replace(
        '    prompt: "Summarize: {{ transcript.text }}"\n',
        '    prompt: "Summarize: {{ transcript.text }}"\n'
        "    expect:\n"
        "      - contains: point one\n"
        "      - contains: Maine\n"
        "      - max_length: 5\n",
    )
    (served / "notes.yaml").write_text(recipe)
    code, _, _ = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 1
    item = next(i for i in manifest(served)["items"] if i["item"] == "board-meeting")
    summary = item["tasks"][0]
    assert summary["status"] == "failed"
    assert summary["error"] == (
        "expectation failed: contains 'Maine': the result does not contain 'Maine' (and 1 more)"
    )
    assert [(e["passed"], e["line"]) for e in summary["expectations"]] == [
        (True, 12),
        (False, 13),
        (False, 14),
    ]
    assert (served / "out" / "notes" / "board-meeting" / "summary.md").is_file()
    assert item["tasks"][1]["status"] == "ok"  # headline still ran on the kept output


def test_plan_matches_what_the_run_then_does(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, out, _ = run_cli("plan", "notes.yaml", "--format", "json")
    assert code == 0
    before = json.loads(out)
    assert (before["transcriptions_to_submit"], before["transcriptions_in_ledger"]) == (1, 0)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    done = manifest(served)["summary"]
    assert done["transcriptions_submitted"] == before["transcriptions_to_submit"]
    # The saved-transcript item's calls were all known before the run; the plan counts
    # a call for every task it cannot render yet (the URL item's, before transcription).
    assert done["llm_calls"] + done["llm_replies_cached"] == before["llm_calls"]

    code, out, _ = run_cli("plan", "notes.yaml", "--format", "json")
    after = json.loads(out)
    assert (after["transcriptions_to_submit"], after["transcriptions_in_ledger"]) == (0, 1)
    assert (after["llm_calls"], after["llm_cached"]) == (0, 6)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    rerun = manifest(served)["summary"]
    assert (rerun["transcriptions_submitted"], rerun["llm_calls"]) == (0, 0)


def test_budgets_refuse_to_start(served: Path, fake: FakeAssemblyAI, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--max-llm-calls", "2")
    assert code == 2
    assert err == (
        "error: this run would send 6 LLM calls (0 more are cached), over --max-llm-calls 2; "
        "nothing was sent\n"
    )
    assert fake.history == []
    code, _, err = run_cli("run", "notes.yaml", "--shard", "3/2")
    assert code == 2
    assert "give K/N with 1 <= K <= N" in err


def test_the_same_audio_twice_in_one_run_is_transcribed_once(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    same = "https://media.example.com/board-meeting.mp3"
    write_list_recipe(served, {"Acme": same, "Globex": same})
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.submissions) == 1
    items = {i["item"]: i for i in manifest(served)["items"]}
    assert sorted(i["reused"] for i in items.values()) == [False, True]
    assert len({i["transcript_id"] for i in items.values()}) == 1


def test_a_stop_while_the_submission_is_on_the_wire_is_recorded(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """The run's time is up while its POST is unanswered: the answer is waited for and
    recorded, so the rerun does not submit again. The POST goes out well within the
    0.6 s (an in-process run sends it in tens of ms) and is answered 0.4 s after the
    stop at the latest."""
    from fakeapi import delay

    fake.faults.add("POST /v2/transcript", delay(1.0), times=1)
    (served / "notes.yaml").write_text(RECIPE)
    code, _, _ = run_cli("run", "notes.yaml", "--progress", "plain", "--timeout", "0.6")
    assert code == 1
    assert len(fake.submissions) == 1
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.submissions) == 1  # the rerun found the job in the ledger


def test_a_reply_that_fails_post_processing_is_asked_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    replies = iter(["no json here", '{"items": ["a"]}'])
    fake.gateway.responder = lambda request: next(replies)
    (served / "strict.yaml").write_text(
        "version: 1\nname: strict\ninputs: [{transcript_file: saved/wildfires.json}]\n"
        "tasks:\n  actions:\n    prompt: '{{ transcript.text }}'\n"
        "    json_schema: {type: object, required: [items]}\n"
    )
    assert run_cli("run", "strict.yaml", "--progress", "plain").exit_code == 1
    code, _, err = run_cli("run", "strict.yaml", "--progress", "plain")
    assert code == 0, err
    (item,) = manifest(served)["items"]
    assert item["tasks"][0]["asked"] is True


def test_a_damaged_state_store_is_a_located_error(served: Path, run_cli: RunCli) -> None:
    """One exit code for one problem: run, plan and cache alike (before: 1, 2, 1)."""
    (served / "notes.yaml").write_text(RECIPE)
    (served / ".transcript-runner").mkdir()
    (served / ".transcript-runner" / "state.db").write_text("not a database")
    for command in (["run", "notes.yaml", "--progress", "plain"], ["plan", "notes.yaml"],
                    ["cache", "ls"]):  # fmt: skip
        code, _, err = run_cli(*command)
        assert code == EXIT_USAGE, (command, err)
        assert "Traceback" not in err
        assert "state store .transcript-runner/state.db: file is not a database" in err


@pytest.mark.parametrize("emptied", ["0 bytes", "no tables"])
def test_an_emptied_state_store_is_refused_never_started_afresh(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, emptied: str
) -> None:
    """A state.db emptied by a failed copy or restore: a new store would pay for every
    job and reply again (before, the rerun paid 2 jobs and 5 calls again); it is refused,
    with its path and what to do, by run, plan and cache alike."""
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    paid = (len(fake.submissions), len(fake.gateway.calls))
    state = served / ".transcript-runner" / "state.db"
    for leftover in state.parent.glob("state.db-*"):
        leftover.unlink()
    if emptied == "0 bytes":
        state.write_bytes(b"")
    else:
        state.unlink()
        sqlite3.connect(state).close()  # an SQLite file, but not the store
        with sqlite3.connect(state) as db:
            db.execute("CREATE TABLE other (x)")
    for command in (["run", "notes.yaml", "--progress", "plain"], ["plan", "notes.yaml"],
                    ["cache", "ls"]):  # fmt: skip
        code, _, err = run_cli(*command)
        assert code == EXIT_USAGE, (command, err)
        assert "Traceback" not in err
        assert "state store .transcript-runner/state.db " in err
        assert "Restore it from a backup or your CI cache" in err
    assert (len(fake.submissions), len(fake.gateway.calls)) == paid  # nothing paid again


def test_a_folder_named_state_db_is_an_error_not_an_empty_store(
    served: Path, run_cli: RunCli
) -> None:
    """Before, `plan` counted everything as to pay, and `run` called it damaged."""
    (served / "notes.yaml").write_text(RECIPE)
    (served / ".transcript-runner" / "state.db").mkdir(parents=True)
    for command in (["plan", "notes.yaml"], ["run", "notes.yaml"], ["cache", "ls"]):
        code, out, err = run_cli(*command)
        assert code == EXIT_USAGE, (command, err)
        assert "state store .transcript-runner/state.db is a folder" in err
        assert "to send" not in out


def test_a_read_only_state_folder_is_said_to_be_read_only(served: Path, run_cli: RunCli) -> None:
    """Not "damaged": the file is fine, the folder cannot take SQLite's log files."""
    import os

    (served / "notes.yaml").write_text(RECIPE)
    state = served / ".transcript-runner"
    state.mkdir()
    Store(state).close()
    state.chmod(0o555)
    try:
        if os.access(state, os.W_OK):
            pytest.skip("this user writes in read-only folders (root)")
        for command in (["run", "notes.yaml"], ["plan", "notes.yaml"], ["cache", "ls"]):
            code, _, err = run_cli(*command)
            assert code == EXIT_USAGE, (command, err)
            assert "it is read-only" in err
            assert "damaged" not in err
    finally:
        state.chmod(0o755)


def test_a_damaged_cached_reply_fails_its_task_without_asking_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """A reply row damaged behind the store's back: its task fails, naming the entry and
    how to remove it; nothing is paid for again, the other item goes on, and `cache`,
    `plan` and `cache clear KEY` handle it."""
    shutil.copy(WILDFIRES, served / "saved" / "second.json")
    (served / "two.yaml").write_text(
        "version: 1\nname: two\ninputs: [{transcript_file: 'saved/*.json'}]\n"
        "tasks:\n"
        "  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text }}'}\n"
        "  headline: {needs: [summary], prompt: 'Headline for: {{ tasks.summary.text }}'}\n"
    )
    assert run_cli("run", "two.yaml", "--progress", "plain").exit_code == 0
    calls = len(fake.gateway.calls)
    with Store(served / ".transcript-runner") as store:
        key = next(r.key for r in store.replies() if r.label == "two/wildfires/summary")
    with sqlite3.connect(served / ".transcript-runner" / "state.db") as db:
        db.execute("UPDATE replies SET reply = substr(reply, 1, 20) WHERE key=?", (key,))
    damaged = (
        f"state store .transcript-runner/state.db: the cached reply {key[:12]} "
        "(two/wildfires/summary) is damaged (its reply is not JSON: "
    )
    remedy = f"remove it with `transcript-runner cache clear {key[:12]}` and the next run asks anew"

    code, _, err = run_cli("run", "two.yaml", "--progress", "plain")
    assert code == 1, err
    assert "Traceback" not in err
    assert len(fake.gateway.calls) == calls  # not asked again: that would pay twice
    items = {i["item"]: i for i in manifest(served)["items"]}
    tasks = {t["task"]: t for t in items["wildfires"]["tasks"]}
    assert tasks["summary"]["status"] == "failed"
    assert tasks["summary"]["error"].startswith(damaged)
    assert tasks["summary"]["error"].endswith(remedy)
    assert tasks["headline"]["status"] == "skipped"
    assert items["second"]["status"] == "ok"
    assert [t["cached"] for t in items["second"]["tasks"]] == [True, True]

    code, out, err = run_cli("plan", "two.yaml")
    assert code == 2, out + err
    assert "Traceback" not in err
    assert err.startswith(f"error: two.yaml: item 'wildfires': {damaged}")

    code, listing, err = run_cli("cache", "ls")
    assert code == 0, err
    (line,) = [line for line in listing.splitlines() if line.startswith(key[:12])]
    assert "two/wildfires/summary  DAMAGED: its reply is not JSON: " in line
    assert len(listing.splitlines()) == 3  # the others are listed as ever (one headline)
    code, shown, err = run_cli("cache", "show", key[:8])
    assert code == 0, err
    entry = json.loads(shown)
    assert entry["damaged"].startswith(damaged)
    assert "reply" not in entry

    code, out, err = run_cli("cache", "clear", key[:8], "--older-than", "1d")
    assert (code, err) == (2, "error: cache clear takes a KEY or --older-than, not both\n")
    code, out, err = run_cli("cache", "clear", key[:8])  # no terminal to ask: refused
    assert code == 2
    assert f"cache clear deletes the cached reply {key[:12]} of .transcript-runner/" in err
    code, out, err = run_cli("cache", "clear", key[:8], "--yes")
    assert (code, out) == (0, "Removed 1 cached replies and 0 ledger entries.\n"), err
    code, _, err = run_cli("run", "two.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.gateway.calls) == calls + 1  # only the removed reply was asked again


LEMUR_RECIPE = """\
version: 1
name: lemur
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - transcript_file: saved/wildfires.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
  locations:
    api: lemur
    prompt: List all the locations affected by wildfires.
"""


def test_lemur_in_the_eu_region_is_refused_before_anything_is_sent(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --region eu` refuses a LeMUR task up front, with validate's own message and
    exit code, and so do `run` and `plan` when ASSEMBLYAI_BASE_URL is the EU host."""
    fake_url = os.environ["ASSEMBLYAI_BASE_URL"]
    (served / "lemur.yaml").write_text(LEMUR_RECIPE)
    code, out, _ = run_cli("validate", "--region", "eu", "lemur.yaml")
    assert code == 3
    (said,) = [line for line in out.splitlines() if "LeMUR is not offered" in line]
    assert said == (
        "lemur.yaml:10:5: $.tasks.locations.api: LeMUR is not offered in "
        "AssemblyAI's EU region; move the task to the LLM Gateway (`transcript-runner "
        "migrate`) or run in the US region"
    )

    for command in (["run", "--progress", "plain"], ["run", "--dry-run"]):
        code, out, err = run_cli(*command, "--region", "eu", "lemur.yaml")
        assert code == 3, out + err
        assert said in err
        assert "Traceback" not in err
    assert fake.history == []  # nothing uploaded, submitted or asked
    assert not (served / "out").exists()

    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", "https://api.eu.assemblyai.com/")
    from_env = said.replace(
        "EU region;", "EU region (ASSEMBLYAI_BASE_URL is https://api.eu.assemblyai.com);"
    )
    for command in (["run", "--progress", "plain"], ["run", "--region", "us"], ["plan"]):
        code, out, err = run_cli(*command, "lemur.yaml")
        assert code == 3, out + err
        assert from_env in err
    code, _, err = run_cli("run", "--region", "eu", "--dry-run", "lemur.yaml")
    assert (code, said in err) == (3, True)  # the command line's region: validate's words
    assert fake.history == []

    # ASSEMBLYAI_BASE_URL wins over --region: on the US host, LeMUR is there.
    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", "https://api.assemblyai.com")
    assert run_cli("run", "--dry-run", "--region", "eu", "lemur.yaml").exit_code == 0
    # A host of one's own (the fake) and no --region: the run goes ahead, LeMUR included.
    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", fake_url)
    run_cli("run", "--progress", "plain", "lemur.yaml")
    items = {i["item"]: i for i in manifest(served)["items"]}
    assert [t["status"] for t in items["board-meeting"]["tasks"]] == ["ok", "ok"]
    assert len(fake.lemur.calls) == 1  # (the saved transcript is not the fake's: refused)


def test_max_audio_hours_counts_local_wav_files(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    audio = ROOT / "tests" / "fixtures" / "audio"
    shutil.copytree(audio, served / "audio")
    (served / "local.yaml").write_text(
        "version: 1\nname: local\ninputs: [{file: 'audio/*.wav'}]\n"
        "tasks: {s: {prompt: 'Summarize {{ item.name }}: {{ transcript.text }}'}}\n"
    )
    code, _, err = run_cli("run", "local.yaml", "--max-audio-hours", "0.001")
    assert code == 2
    assert err == (
        "error: this run would transcribe 0.00 h (0.1 min) of audio, over --max-audio-hours "
        "0.001; nothing was sent\n"
    )
    assert fake.history == []
    code, _, err = run_cli("run", "local.yaml", "--max-audio-hours", "1", "--progress", "plain")
    assert code == 0, err
    assert len(fake.uploads) == 2


def test_an_output_that_cannot_be_written_fails_its_task_only(
    served: Path, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    # A folder where the summary file should go: writing it fails for that item.
    (served / "out" / "notes" / "wildfires" / "summary.md").mkdir(parents=True)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 1, err
    assert "Traceback" not in err
    items = {i["item"]: i for i in manifest(served)["items"]}
    tasks = {t["task"]: t for t in items["wildfires"]["tasks"]}
    assert tasks["summary"]["status"] == "failed"
    assert "cannot write" in tasks["summary"]["error"]
    assert tasks["headline"]["status"] == "skipped"
    assert items["board-meeting"]["status"] == "ok"


def test_an_empty_out_option_means_not_given(served: Path, run_cli: RunCli) -> None:
    """An unset CI variable (`--out "$OUT"`) must not put outputs in the current folder."""
    (served / "notes.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain", "--out", "")
    assert code == 0, err
    assert (served / "out" / "notes" / "wildfires" / "summary.md").is_file()
    assert not (served / "notes").exists()


def test_a_damaged_stored_transcript_is_a_message_in_plan(served: Path, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    with Store(served / ".transcript-runner") as store:
        (entry,) = list(store.ledger())
        store.transcript_put(entry.transcript_id, "transcript", {"words": "not a list"})
    code, out, err = run_cli("plan", "notes.yaml")
    assert code == 2, out + err
    assert "Traceback" not in err
    assert f"the stored transcript {entry.transcript_id} is damaged" in err


def test_a_damaged_kept_transcript_is_read_again_from_assemblyai_never_paid_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading a transcript back costs nothing; submitting it again would. Offline,
    with nothing to read it from, the damage fails that item only, named."""
    import sqlite3

    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    with Store(served / ".transcript-runner") as store:
        (entry,) = list(store.ledger())
    database = sqlite3.connect(served / ".transcript-runner" / "state.db")
    with database:
        database.execute(
            "UPDATE transcripts SET body=? WHERE transcript_id=? AND part='transcript'",
            (b"not zlib", entry.transcript_id),
        )
    database.close()

    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain", "--offline")
    assert code == 1, err
    assert "Traceback" not in err
    items = {i["item"]: i for i in manifest(served)["items"]}
    assert items["wildfires"]["status"] == "ok"  # the other item goes on
    assert items["board-meeting"]["status"] == "failed"
    assert f"transcript {entry.transcript_id} is damaged" in items["board-meeting"]["error"]

    before = len(fake.history)
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain", "--no-cache")
    assert code == 0, err
    assert "reading it again from AssemblyAI" in caplog.text
    sent = [(r.method, r.path) for r in fake.history[before:]]
    assert ("GET", f"/v2/transcript/{entry.transcript_id}") in sent
    assert not [s for s in sent if s == ("POST", "/v2/transcript")]  # not paid again
    with Store(served / ".transcript-runner") as store:  # the copy was replaced
        assert store.transcript_get(entry.transcript_id, "transcript") is not None


def test_a_refused_key_stops_the_run_at_the_first_401(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2, one message, nothing more sent: every other request would be refused too."""
    urls = {f"customer-{n:02d}": f"https://media.example.com/call-{n:02d}.mp3" for n in range(30)}
    write_list_recipe(served, urls)
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "a-wrong-key")
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("AssemblyAI refused the API key") == 1
    assert "401" in err
    assert len(fake.history) == 1  # the first request, and nothing after it
    assert manifest(served)["summary"]["outcome"] == "stopped"


def test_list_values_cannot_move_outputs_or_requests_elsewhere(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """A CSV value of ``../..`` in output.dir, or ``..`` as a transcript id: refused."""
    (served / "calls.csv").write_text(
        "url,customer\n"
        "https://media.example.com/a.mp3,../../escaped\n"
        "https://media.example.com/b.mp3,acme\n"
    )
    (served / "notes.yaml").write_text(
        "version: 1\nname: notes\ninputs: [{list: calls.csv}]\n"
        "tasks:\n  summary: {prompt: 'Summarize: {{ transcript.text }}'}\n"
        "output: {dir: 'out/{{ item.vars.customer }}'}\n"
    )
    code, out, _ = run_cli("validate", "notes.yaml")
    assert code == 3
    assert out.startswith("calls.csv:2: item 'a': output.dir renders to a folder outside out/")
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 3
    assert fake.history == []  # nothing was sent
    assert not (served.parent / "escaped").exists()

    (served / "ids.csv").write_text("transcript_id\n..\n")
    (served / "ids.yaml").write_text(
        "version: 1\nname: ids\ninputs: [{list: ids.csv}]\n"
        "tasks:\n  summary: {prompt: 'Summarize: {{ transcript.text }}'}\n"
    )
    requests = len(fake.history)
    code, out, _ = run_cli("validate", "ids.yaml")
    assert code == 3
    assert "ids.csv:2" in out
    assert "is not a transcript id" in out
    assert run_cli("run", "ids.yaml").exit_code == 3
    assert len(fake.history) == requests  # nothing was sent


def test_a_hung_llm_call_is_bounded_by_the_recipe(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """`timeouts: {llm, retry}`: a hung model fails its task in about a second, not 180 s,
    after one more try (a second timeout is a hang). Every call hangs, so however short
    the timeout it is a hang that ends it (0.1 s: the run's calls wait in turn)."""
    from fakeapi import delay

    fake.faults.add("POST /v1/chat/completions", delay(30), times=None)
    (served / "notes.yaml").write_text(
        RECIPE.replace("transcription:\n", "timeouts: {llm: 0.1, retry: 0.5}\ntranscription:\n")
    )
    started = time.monotonic()
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert time.monotonic() - started < 10
    assert code == 1
    tasks = [t for i in manifest(served)["items"] for t in i["tasks"]]
    first = [t for t in tasks if t["status"] == "failed"]
    assert first, err
    assert all("timed out twice (0.1 s each)" in t["error"] for t in first)


def test_outputs_honour_the_umask_and_a_crash_leaves_no_stale_manifest(
    served: Path, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    summary = served / "out" / "notes" / "wildfires" / "summary.md"
    expected = 0o666 & ~_umask()
    assert summary.stat().st_mode & 0o777 == expected
    # A run that dies after starting leaves only run.json.partial, not the old run.json.
    from runner.results.manifest import ManifestWriter

    writer = ManifestWriter(served / "out" / "run.json", {"recipes": []})
    assert not (served / "out" / "run.json").exists()
    assert (served / "out" / "run.json.partial").exists()
    writer.close("interrupted", 0.0)


def _start_list_run(
    warm: Warm, tmp_path: Path, name: str, count: int, url: str, *options: str
) -> WarmProcess:
    """Start `runner run` on a recipe of `count` listed URLs, one summary each, in a
    process of its own (signals need one; forked from the warm server, which imported
    the runner already: tests/warmstart.py), with plain progress on a readable stderr."""
    rows = [f"https://media.example.com/call-{n:02d}.mp3" for n in range(count)]
    (tmp_path / "calls.csv").write_text("url\n" + "\n".join(rows) + "\n")
    (tmp_path / f"{name}.yaml").write_text(
        f"version: 1\nname: {name}\ninputs: [{{list: calls.csv}}]\n"
        "tasks:\n  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:100] }}'}\n"
    )
    command = ["-m", "runner", "run", f"{name}.yaml", "--progress", "plain"]
    return WarmProcess(
        warm,
        [*command, *options],
        cwd=tmp_path,
        env=subprocess_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_after_a_signal_no_new_submission_is_sent(tmp_path: Path, warm: Warm) -> None:
    """SIGTERM while 20 submissions queue behind one slot: the one on the wire is
    recorded, the queued ones are never sent (before, all of them went out)."""
    import signal

    from fakeapi import hold

    fake = FakeAssemblyAI(api_key=KEY)
    signalled = tmp_path / "signalled"  # the submission on the wire is answered after it
    fake.faults.add("POST /v2/transcript", hold(signalled), times=None)
    with serve_in_process(fake, lambda f: len(f.submissions)) as server:
        url = server.base_url  # type: ignore[attr-defined]
        process = _start_list_run(warm, tmp_path, "q", 20, url, "--limit", "transcriptions=1")
        # Readiness, not time: every submission records its intent before it queues for
        # the one slot, so the store says when most of them are waiting.
        state = tmp_path / ".transcript-runner" / "state.db"
        while _open_intents(state) < 10:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.02)  # between looks at the store; the signal is the store
        process.send_signal(signal.SIGTERM)
        signalled.touch()
        _, err = process.communicate(timeout=120)  # a guard against a hang, not a wait
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert server.result <= 1  # at most the one already on the wire
    assert _open_intents(state) == 0  # the ones never sent were closed, not left in doubt
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["summary"]["outcome"] == "interrupted"


def _open_intents(state: Path) -> int:
    """Submissions recorded as about to be sent and not yet answered."""
    import sqlite3

    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM intents").fetchone()[0])
    except sqlite3.OperationalError:  # the run is still creating its tables
        return 0


def test_data_cannot_inject_workflow_commands_into_the_log(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """An error text with line breaks and `::stop-commands::` (a server's, a list
    cell's) stays inside its log line: GitHub would otherwise obey it."""
    hostile = "refused\n::stop-commands::pause\n::error::forged"
    fake.faults.add("POST /v1/chat/completions", status(400, body={"error": hostile}), times=None)
    (served / "notes.yaml").write_text(RECIPE)
    code, out, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 1
    assert "refused ⏎ :\u200b:stop-commands" in err
    assert not [line for line in (out + err).splitlines() if line.lstrip().startswith("::")]


def test_a_failed_items_line_gives_its_first_cause_and_counts_the_rest() -> None:
    from runner.results.progress import describe
    from runner.results.records import ItemRecord, TaskRecord

    record = ItemRecord("notes", "call", "s", "url", "failed")
    record.tasks = [
        TaskRecord("summary", "failed", error="POST /v1/chat/completions failed (400): bad\nbody"),
        TaskRecord("headline", "skipped", error="not run because summary failed"),
        TaskRecord("topics", "ok"),
    ]
    assert describe(record) == (
        "notes/call: failed: summary failed: POST /v1/chat/completions failed (400): bad ⏎ body"
        " (and 1 more: see run.json)"
    )


def test_a_plain_log_beats_every_30_seconds_while_nothing_finishes() -> None:
    import io

    from runner.results.progress import PlainProgress

    now = [100.0]
    out = io.StringIO()
    reporter = PlainProgress(out, clock_=lambda: now[0])
    reporter.start(60)
    now[0] += 29
    reporter.tick({"queued": 10, "transcribing": 50})
    assert out.getvalue() == "Running 60 items.\n"  # not yet
    now[0] += 2
    reporter.tick({"queued": 10, "transcribing": 30, "ready": 5, "asking": 15})
    assert out.getvalue().splitlines()[-1] == (
        "[0:31] 0/60 done · queued 10 · transcribing 30 · waiting for a slot 5 · asking 15"
    )
    now[0] += 10
    reporter.tick({"asking": 1})  # 10 s after the heartbeat: quiet
    assert len(out.getvalue().splitlines()) == 2


def test_dry_run_and_plan_give_one_account_of_what_is_cached(served: Path, run_cli: RunCli) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    code, out, _ = run_cli("run", "notes.yaml", "--dry-run")
    assert code == 0
    assert (
        "board-meeting: reuse the transcript in the ledger; 0 LLM call(s) to send, 3 cached" in out
    )
    assert "wildfires: read the saved transcript; 0 LLM call(s) to send, 3 cached" in out
    _, planned, _ = run_cli("plan", "notes.yaml")
    assert "LLM calls: 0 to send, 6 cached" in planned


def test_the_summary_does_not_repeat_the_failed_items_lines(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    fake.fail_audio("board-meeting", "Download error, unable to download")
    code, _, err = run_cli("run", "notes.yaml", "--progress", "plain")
    assert code == 1
    assert err.count("Download error, unable to download") == 1  # its own line only
    assert "  failures: 1 item, each in its line above; every cause is in run.json" in err


def test_running_recipes_one_after_another_keeps_every_manifest(
    served: Path, run_cli: RunCli
) -> None:
    (served / "notes.yaml").write_text(RECIPE)
    (served / "other.yaml").write_text(RECIPE.replace("name: notes", "name: other"))
    assert run_cli("run", "notes.yaml", "--progress", "plain").exit_code == 0
    assert run_cli("run", "other.yaml", "--progress", "plain").exit_code == 0
    kept = sorted((served / "out" / "runs").glob("*.json"))
    assert len(kept) == 2
    assert kept[0].name.endswith("-notes.json")
    assert kept[1].name.endswith("-other.json")
    first = json.loads(kept[0].read_text())
    assert first["recipes"][0]["name"] == "notes"
    assert json.loads((served / "out" / "run.json").read_text())["recipes"][0]["name"] == "other"


# --- paid work survives kill -9, skewed clocks and a careless `cache clear` ------------

SLOW_CHECK = """\
version: 1
name: codes
inputs: [{list: calls.csv}]
tasks:
  code:
    prompt: 'The code of {{ item.name }}'
    json_schema:
      type: object
      required: [code]
      properties: {code: {type: string, pattern: '(a|aa)+c|b'}}
"""


class _AnswersThenSignals:
    """The fake's responder: a reply whose check takes about half a second of CPU (the
    pattern backtracks: 30 a's; 32 took 1.1 s, and the rerun checks both again), long
    enough to be checked on a thread and killed while checking; after ``count`` answers
    it touches ``signal`` (the fake runs in its own process)."""

    def __init__(self, signal: Path, count: int) -> None:
        self.signal, self.count, self.answered = signal, count, 0

    def __call__(self, request: dict[str, Any]) -> str:
        self.answered += 1
        if self.answered == self.count:
            self.signal.touch()
        return json.dumps({"code": "a" * 30 + "b", "notes": "n" * 17_000})


def _rows(state: Path, table: str) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=5) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # the run is still creating its tables
        return 0


@pytest.mark.slow
def test_replies_received_before_a_kill_9_are_not_paid_again(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, warm: Warm
) -> None:
    """SIGKILL while two paid replies are being checked: each was committed the moment
    it arrived, so the rerun replays both (before: it paid for both again). The killed
    run is a process of its own; the rerun runs in this one."""
    import signal

    answered = tmp_path / "answered"
    fake = FakeAssemblyAI(api_key=KEY)
    fake.gateway.responder = _AnswersThenSignals(answered, 2)
    (tmp_path / "calls.csv").write_text(
        "url\nhttps://media.example.com/a.mp3\nhttps://media.example.com/b.mp3\n"
    )
    (tmp_path / "codes.yaml").write_text(SLOW_CHECK)
    command = ["-m", "runner", "run", "codes.yaml", "--progress", "plain"]
    state = tmp_path / ".transcript-runner" / "state.db"
    with serve_in_process(fake, lambda f: len(f.gateway.calls)) as server:
        env = subprocess_env(server.base_url)  # type: ignore[attr-defined]
        process = WarmProcess(
            warm, command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while not answered.exists():  # readiness: the fake has sent both replies
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.02)
        # A moment for the replies to come in; the checks take a while each. Killed
        # after at most 2 s whether or not they were committed (the check is below).
        deadline = time.monotonic() + 2
        while _rows(state, "replies") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        monkeypatch.chdir(tmp_path)
        for name in ("ASSEMBLYAI_API_KEY", "ASSEMBLYAI_BASE_URL", "ASSEMBLYAI_LLM_GATEWAY_URL"):
            monkeypatch.setenv(name, env[name])
        rerun = run_cli(*command[2:])  # the same arguments, after "-m runner"
    assert process.returncode == -signal.SIGKILL
    assert rerun.exit_code == 0, rerun.stderr
    assert server.result == 2  # the two replies of the killed run; the rerun asked nothing
    report = manifest(tmp_path)
    assert [t["cached"] for i in report["items"] for t in i["tasks"]] == [True, True]


def _touch_once_two_runs_are_known(state: Path, gate: Path, met: list[bool]) -> None:
    """Touch ``gate`` once a second run has asked the store for a claim (its row in
    ``runs``), saying so in ``met``; or after a minute, so that nothing waits forever."""
    deadline = time.monotonic() + 60
    while _rows(state, "runs") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # between looks at the store; the row is the signal
    met.append(_rows(state, "runs") >= 2)
    gate.touch()


@pytest.mark.slow
def test_two_runs_whose_clocks_differ_by_two_minutes_pay_for_each_thing_once(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, warm: Warm
) -> None:
    """Two runs share a state folder; the second's clock is 120 s ahead. Liveness is
    judged by the holder's process, never by comparing clocks, so neither takes over
    the other's live claims (before: the second paid again for what the first held).
    The first run is a process of its own; the second runs in this one, its
    ``time.time`` two minutes ahead (the runner reads the wall clock only through it)."""
    import threading

    from fakeapi import hold

    fake = FakeAssemblyAI(api_key=KEY)
    fake.gateway.responder = reply_for
    # The first run's LLM requests are answered only once the second has met its claims.
    answer = tmp_path / "answer"
    fake.faults.add("POST /v1/chat/completions", hold(answer), times=None)
    count = 6
    with serve_in_process(fake, lambda f: (len(f.submissions), len(f.gateway.calls))) as server:
        url = server.base_url  # type: ignore[attr-defined]
        first = _start_list_run(warm, tmp_path, "shared", count, url, "--out", "out-1")
        state = tmp_path / ".transcript-runner" / "state.db"
        # Readiness: every job in the ledger and the first run's LLM requests claimed
        # (held unanswered), so the second run meets claims that are alive.
        while _rows(state, "transcriptions") < count or _rows(state, "claims") < count:
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.02)
        # Every job is in the ledger, so the second run's first claim is for a reply
        # the first run is waiting on: then the replies are let through.
        met: list[bool] = []
        opener = threading.Thread(
            target=_touch_once_two_runs_are_known, args=(state, answer, met), daemon=True
        )
        opener.start()
        monkeypatch.chdir(tmp_path)
        for name, value in subprocess_env(url).items():
            monkeypatch.setenv(name, value)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 120)
        second = run_cli("run", "shared.yaml", "--progress", "plain", "--out", "out-2")
        monkeypatch.setattr(time, "time", real_time)
        opener.join(timeout=60)
        _, err = first.communicate(timeout=300)
    assert met == [True]  # the second run met the first's claims while they were alive
    assert first.returncode == 0, err
    assert second.exit_code == 0, second.stderr
    assert server.result == (count, count)  # each recording and each request paid once


@pytest.mark.slow
def test_cache_clear_during_a_run_keeps_the_jobs_it_waits_on(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, warm: Warm
) -> None:
    """`cache clear --yes` while a run polls its jobs: their ledger rows are kept and
    said so (before: deleted, and the next run submitted every job again)."""
    from fakeapi import delay

    # No job finishes before the clear has returned, however loaded the machine (the test
    # opens the gate then); polls are slowed so they do not spin.
    fake = FakeAssemblyAI(api_key=KEY)
    fake.gate = tmp_path / "cleared"
    fake.gateway.responder = reply_for
    fake.faults.add("GET /v2/transcript/*", delay(0.2), times=None)
    count = 4
    with serve_in_process(fake, lambda f: len(f.submissions)) as server:
        url = server.base_url  # type: ignore[attr-defined]
        running = _start_list_run(warm, tmp_path, "busy", count, url)
        state = tmp_path / ".transcript-runner" / "state.db"
        while _rows(state, "transcriptions") < count:  # readiness: every job submitted
            assert running.poll() is None, running.communicate()[1]
            time.sleep(0.02)
        monkeypatch.chdir(tmp_path)
        code, out, err = run_cli("cache", "clear", "--yes")
        fake.gate.touch()
        _, run_err = running.communicate(timeout=300)
        for name, value in subprocess_env(url).items():  # the next run, in this process
            monkeypatch.setenv(name, value)
        rerun = run_cli("run", "busy.yaml", "--progress", "plain")
    assert code == 0, err
    assert f"Kept {count} entries that a live run is working on" in out
    assert f"pid {running.command_pid} on " in out
    assert running.returncode == 0, run_err
    assert rerun.exit_code == 0, rerun.stderr
    assert server.result == count  # the rerun reattached to every job: none paid twice
