"""Longer than the window (``context_window``, ``long: map-reduce``) and more than one
recording (``over:``), end to end against the fake AssemblyAI on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, TranscriptJob

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"

# The wildfires transcript is about 1,220 tokens by the runner's estimate: over a
# 1,000-token window once 200 are kept for the reply.
LONG = """\
version: 1
name: long
inputs:
  - transcript_file: saved/wildfires.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
    context_window: 1000
    max_tokens: 200
"""


def reply_for(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    if "answers for each part" in content:
        return "combined summary"
    return f"summary of a part of {len(content)} characters"


@pytest.fixture
def fake() -> FakeAssemblyAI:
    from conftest import KEY

    api = FakeAssemblyAI(api_key=KEY)
    api.gateway.responder = reply_for
    return api


@pytest.fixture
def served(served: Path) -> Path:
    (served / "saved").mkdir()
    shutil.copy(WILDFIRES, served / "saved" / "wildfires.json")
    return served


def manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "out" / "run.json").read_text())
    return data


def test_a_prompt_over_the_window_is_refused_by_run_before_sending(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "long.yaml").write_text(LONG)
    code, _, _ = run_cli("run", "long.yaml", "--progress", "plain")
    assert code == 1
    assert fake.gateway.calls == []
    task = manifest(served)["items"][0]["tasks"][0]
    assert task["status"] == "failed"
    assert "1,000-token context window of claude-sonnet-4-6" in task["error"]
    assert "long: map-reduce" in task["error"]


def test_map_reduce_reads_the_transcript_in_parts_and_a_rerun_sends_nothing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "long.yaml").write_text(LONG + "    long: map-reduce\n")
    code, _, err = run_cli("run", "long.yaml", "--progress", "plain")
    assert code == 0, err
    parts = [c for c in fake.gateway.calls if c.messages[-1]["content"].startswith("Summarize")]
    assert len(parts) == 2
    # Each part is cut at a paragraph and is a part of the transcript, in order.
    whole = json.loads(WILDFIRES.read_text())["text"]
    texts = [c.messages[-1]["content"].removeprefix("Summarize: ") for c in parts]
    assert all(t in whole for t in texts)
    assert whole.index(texts[0]) < whole.index(texts[1])
    reduce = fake.gateway.calls[-1].messages[-1]["content"]
    assert "--- Part 1 (00:00:00 to " in reduce
    assert "--- Part 2 (" in reduce
    assert "Summarize: " in reduce  # the request, without any part's text
    out = served / "out" / "long" / "wildfires" / "summary.md"
    assert out.read_text() == "combined summary\n"
    task = manifest(served)["items"][0]["tasks"][0]
    assert task["parts"] == 2
    assert task["asked"] is True

    sent = len(fake.gateway.calls)
    code, _, err = run_cli("run", "long.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.gateway.calls) == sent
    assert manifest(served)["items"][0]["tasks"][0]["cached"] is True


WEEK = """\
version: 1
name: week
inputs:
  - transcript_file: saved/*.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text | truncate_tokens(50) }}"
  week:
    over: all
    needs: [summary]
    prompt: |
      This week's {{ items | length }} calls:
      {% for entry in items -%}
      - {{ entry.item.name }} ({{ entry.transcript.id }}): {{ entry.tasks.summary.text }}
      {% endfor %}
"""


def saved_calls(folder: Path, count: int) -> None:
    """``count`` saved transcripts (the wildfires one under other ids and names)."""
    (folder / "saved").mkdir(exist_ok=True)
    data = json.loads(WILDFIRES.read_text())
    for n in range(1, count + 1):
        data["id"] = f"call-{n:02d}"
        (folder / "saved" / f"call-{n:02d}.json").write_text(json.dumps(data))


def test_a_task_over_all_items_runs_once_is_cached_and_reported(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved" / "wildfires.json").unlink()
    saved_calls(served, 12)
    (served / "week.yaml").write_text(WEEK)
    code, said, err = run_cli("run", "week.yaml", "--progress", "plain", "--report", "report.html")
    assert code == 0, err
    week = [c for c in fake.gateway.calls if "This week's" in c.messages[-1]["content"]]
    assert len(week) == 1
    prompt = week[0].messages[-1]["content"]
    assert "This week's 12 calls:" in prompt
    assert "- call-07 (call-07): summary of a part of" in prompt  # each item's own result
    output = served / "out" / "week" / "groups" / "all" / "week.md"
    assert output.read_text() == week[0].content + "\n"
    entries = {e["item"]: e for e in manifest(served)["items"]}
    group = entries["groups/all"]
    assert group["kind"] == "group"
    assert group["status"] == "ok"
    assert group["tasks"][0]["output"] == "out/week/groups/all/week.md"
    assert len(entries) == 13
    summary = manifest(served)["summary"]  # the group is counted as a group, not an item
    assert (summary["items"], summary["groups"]) == ({"ok": 12}, {"ok": 1})
    assert "  groups: 1 ok, 0 failed" in said + err  # the run's summary says so too
    report = (served / "report.html").read_text()
    assert "groups/all" in report
    assert "<b>groups</b>: 1 ok" in report

    sent = len(fake.gateway.calls)
    code, _, err = run_cli("run", "week.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.gateway.calls) == sent
    group = {e["item"]: e for e in manifest(served)["items"]}["groups/all"]
    assert group["tasks"][0]["cached"] is True


SEED_LEMUR_REQUEST = ROOT / "tests" / "fixtures" / "seeds" / "lemur-task-request.json"

LEMUR = """\
version: 1
name: lemur-week
inputs:
  - transcript_file: saved/*.json
tasks:
  locations:
    api: lemur
    over: all
    prompt: List all the locations affected by wildfires.
    context: This is an interview about wildfires.
    final_model: anthropic/claude-3-7-sonnet-20250219
    max_output_size: 3000
    temperature: 0
"""


def test_a_lemur_task_over_several_items_sends_their_ids_in_one_request(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved" / "wildfires.json").unlink()
    saved_calls(served, 3)
    for n in (1, 2, 3):  # the saved transcripts live on the (fake) account
        tid = f"call-{n:02d}"
        fake.transcripts[tid] = TranscriptJob(tid, "https://media.example.com/a.mp3", {}, 0, 0)
    (served / "lemur.yaml").write_text(LEMUR)
    code, _, err = run_cli("run", "lemur.yaml", "--progress", "plain")
    assert code == 0, err
    assert len(fake.lemur.calls) == 1
    sent = fake.lemur.calls[0].request
    seed = json.loads(SEED_LEMUR_REQUEST.read_text())
    assert sorted(sent) == sorted(seed)
    for field in seed:
        if field == "transcript_ids":
            assert sent[field] == ["call-01", "call-02", "call-03"]
        else:
            assert sent[field] == seed[field], field
    output = served / "out" / "lemur-week" / "groups" / "all" / "locations.md"
    assert output.read_text() == fake.lemur.calls[0].response + "\n"


def test_a_saved_transcript_without_an_id_is_a_validate_error_for_lemur(
    served: Path, run_cli: RunCli
) -> None:
    saved_calls(served, 2)
    data = json.loads((served / "saved" / "call-02.json").read_text())
    del data["id"]
    (served / "saved" / "call-02.json").write_text(json.dumps(data))
    (served / "lemur.yaml").write_text(LEMUR)
    code, out, _ = run_cli("validate", "lemur.yaml")
    assert code == 3
    assert out.startswith(
        "lemur.yaml:4:22: $.inputs[0].transcript_file: the saved transcript saved/call-02.json "
        "has no 'id'"
    )


def test_a_listed_saved_transcript_without_an_id_is_a_validate_error_for_lemur(
    served: Path, run_cli: RunCli
) -> None:
    saved_calls(served, 2)
    data = json.loads((served / "saved" / "call-02.json").read_text())
    del data["id"]
    (served / "saved" / "call-02.json").write_text(json.dumps(data))
    (served / "calls.csv").write_text(
        "transcript_file,who\nsaved/call-01.json,Ann\nsaved/call-02.json,Bo\n"
    )
    listed = LEMUR.replace("  - transcript_file: saved/*.json", "  - list: calls.csv")
    (served / "lemur.yaml").write_text(listed)
    code, out, _ = run_cli("validate", "lemur.yaml")
    assert code == 3, out
    assert out.startswith("lemur.yaml:4:11: $.inputs[0].list: the saved transcript ")
    assert "saved/call-02.json (calls.csv:3) has no 'id'" in out


def test_plan_refuses_a_prompt_over_the_window_with_its_size(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "long.yaml").write_text(LONG)
    code, out, err = run_cli("plan", "long.yaml")
    assert code == 1
    assert "1 LLM call(s) to send" not in out  # refused, not counted as sent
    assert err.startswith("error: long/wildfires: the prompt of task 'summary' is about 1,2")
    assert "tokens (estimated) and its reply may take 200, more than the 1,000-token" in err
    # run --dry-run says the same, and fails as the run would.
    code, out, err = run_cli("run", "long.yaml", "--dry-run")
    assert code == 1
    assert err.startswith("error: long/wildfires: the prompt of task 'summary' is about 1,2")
    assert fake.gateway.calls == []


def test_plan_counts_the_parts_and_then_finds_them_cached(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "long.yaml").write_text(LONG + "    long: map-reduce\n")
    code, out, err = run_cli("plan", "long.yaml", "--format", "json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["llm_calls"] == 3  # two parts and the reduce
    assert planned["too_long"] == []
    assert run_cli("run", "long.yaml", "--progress", "plain").exit_code == 0
    planned = json.loads(run_cli("plan", "long.yaml", "--format", "json").stdout)
    assert (planned["llm_calls"], planned["llm_cached"]) == (0, 3)


def test_plan_knows_a_judge_of_a_task_read_in_parts_cached_after_a_run(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """The judge reads the reduce's answer: once every part and the reduce are kept,
    plan finds the judge's verdict kept too (it counted it as a call to send)."""
    from fakeapi import judge_responder

    fake.gateway.responder = judge_responder(lambda output: (True, 0.9), otherwise=reply_for)
    judged = "    long: map-reduce\n    expect:\n      - judge: Is it a summary?\n"
    (served / "long.yaml").write_text(LONG + judged + "        model: gpt-4.1\n")
    before = json.loads(run_cli("plan", "long.yaml", "--format", "json").stdout)
    assert (before["llm_calls"], before["llm_cached"]) == (4, 0)  # 2 parts, reduce, judge
    assert run_cli("run", "long.yaml", "--progress", "plain").exit_code == 0
    assert len(fake.gateway.calls) == 4
    after = json.loads(run_cli("plan", "long.yaml", "--format", "json").stdout)
    assert (after["llm_calls"], after["llm_cached"]) == (0, 4)


def test_plan_counts_a_group_task_once_and_then_cached(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved" / "wildfires.json").unlink()
    saved_calls(served, 12)
    (served / "week.yaml").write_text(WEEK)
    planned = json.loads(run_cli("plan", "week.yaml", "--format", "json").stdout)
    assert planned["llm_calls"] == 13
    group = [i for i in planned["items"] if i["item"] == "groups/all"]
    assert group[0]["llm_calls"] == 1
    # The forecast paces the group's request with the items' (12 + 1 to one model).
    stages = planned["forecast"]["stages"]
    assert sum(s["requests"] for s in stages if s["name"].startswith("llm ")) == 13
    dry = run_cli("run", "week.yaml", "--dry-run").stdout
    assert "  groups/all: a group of items; 1 LLM call(s) to send, 0 cached\n" in dry
    assert "; and 1 group(s) of items\n" in dry  # as the run counts it: 13 to finish
    assert run_cli("run", "week.yaml", "--progress", "plain").exit_code == 0
    planned = json.loads(run_cli("plan", "week.yaml", "--format", "json").stdout)
    assert (planned["llm_calls"], planned["llm_cached"]) == (0, 13)


def test_the_gateway_model_lists_window_is_used_by_validate_online_plan_and_run(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    fake.gateway.context_lengths = {"claude-sonnet-4-6": 1000}
    (served / "long.yaml").write_text(LONG.replace("    context_window: 1000\n", ""))
    assert run_cli("validate", "long.yaml").exit_code == 0  # offline: 200,000 tokens
    code, out, _ = run_cli("validate", "long.yaml", "--online")
    assert code == 3
    assert out.startswith(
        "long.yaml:6:3: $.tasks.summary: for item 'wildfires' (saved/wildfires.json), the "
        "prompt of task 'summary' is about 1,2"
    )
    assert "more than the 1,000-token context window of claude-sonnet-4-6" in out
    # The model list validate kept is what plan and run measure with.
    assert run_cli("plan", "long.yaml").exit_code == 1
    assert run_cli("run", "long.yaml", "--progress", "plain").exit_code == 1
    assert fake.gateway.calls == []


QUOTES = """\
version: 1
name: quotes
inputs:
  - transcript_file: saved/wildfires.json
tasks:
  best:
    quotes: {count: 2}
    context_window: 1000
    max_tokens: 200
    long: map-reduce
"""


def test_quotes_read_in_parts_keep_their_times_in_the_whole_recording(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    def reply(request: dict[str, Any]) -> str:
        content = request["messages"][-1]["content"]
        if "answers for each part" not in content:  # a part: its longest sentence
            sentences = content.split("\nTranscript: ", 1)[1].split(". ")
            return '"' + max(sentences, key=len).rstrip(".") + '."'
        return "\n".join(line for line in content.split("\n") if line.startswith('"'))

    fake.gateway.responder = reply
    (served / "quotes.yaml").write_text(QUOTES)
    code, _, err = run_cli("run", "quotes.yaml", "--progress", "plain")
    assert code == 0, err
    quotes = json.loads((served / "out" / "quotes" / "wildfires" / "best.json").read_text())
    assert [q["verdict"] for q in quotes] == ["verbatim", "verbatim"]
    words = json.loads(WILDFIRES.read_text())["words"]
    for quote in quotes:  # each quote's time is its first word's in the whole recording
        first = quote["quote"].split()[0]
        assert any(w["start"] == quote["start"] and w["text"] == first for w in words)
    parts = [
        c.messages[-1]["content"].split("\nTranscript: ", 1)[1] for c in fake.gateway.calls[:2]
    ]
    whole = json.loads(WILDFIRES.read_text())["text"]
    first = next(p for p in parts if whole.startswith(p))
    second_starts = words[len(first.split())]["start"]  # the second part's first word
    assert quotes[0]["start"] < second_starts <= quotes[1]["start"]


BY_TEAM = """\
version: 1
name: teams
inputs:
  - transcript_file: saved/call-0[12].json
    vars: {team: sales/eu}
  - transcript_file: saved/call-03.json
    vars: {team: support}
tasks:
  digest:
    over: {group_by: team}
    prompt: >-
      Calls of {{ group.value }}:
      {% for entry in items %}{{ entry.item.name }} {% endfor %}
"""


def test_a_task_grouped_by_a_field_writes_one_path_safe_folder_per_value(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    saved_calls(served, 3)
    (served / "teams.yaml").write_text(BY_TEAM)
    code, _, err = run_cli("run", "teams.yaml", "--progress", "plain")
    assert code == 0, err
    asked = sorted(c.messages[-1]["content"] for c in fake.gateway.calls)
    assert asked == ["Calls of sales/eu: call-01 call-02 ", "Calls of support: call-03 "]
    groups = served / "out" / "teams" / "groups"
    assert sorted(p.name for p in groups.iterdir()) == ["team-sales-eu", "team-support"]
    assert (groups / "team-sales-eu" / "digest.md").is_file()


def test_a_group_by_field_no_item_has_is_a_warning_at_validate(
    served: Path, run_cli: RunCli
) -> None:
    saved_calls(served, 3)
    (served / "teams.yaml").write_text(BY_TEAM.replace("group_by: team", "group_by: taem"))
    code, out, _ = run_cli("validate", "teams.yaml")
    assert code == 0, out
    assert "teams.yaml:10:22: warning: $.tasks.digest.over.group_by: no item has the field " in out
    assert "'taem' (items have: team)" in out
    code, out, _ = run_cli("validate", "teams.yaml", "--strict")
    assert code == 3


def test_a_lemur_group_over_its_limit_is_asked_in_batches_then_combined(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.execute.group_work as group_work

    monkeypatch.setattr(group_work, "LEMUR_MAX_TRANSCRIPTS", 2)  # LeMUR's is 100
    saved_calls(served, 3)
    for n in (1, 2, 3):
        tid = f"call-{n:02d}"
        fake.transcripts[tid] = TranscriptJob(tid, "https://media.example.com/a.mp3", {}, 0, 0)
    (served / "lemur.yaml").write_text(LEMUR.replace("saved/*.json", "saved/call-*.json"))
    code, _, err = run_cli("run", "lemur.yaml", "--progress", "plain")
    assert code == 0, err
    batches = [c.request["transcript_ids"] for c in fake.lemur.calls[:2]]
    assert sorted(batches) == [["call-01", "call-02"], ["call-03"]]
    combined = fake.lemur.calls[2].request
    assert "transcript_ids" not in combined
    assert "--- Transcripts call-01 to call-02 ---" in combined["input_text"]
    assert "read in 2 batches of up to 2;" in combined["prompt"]
    group = {e["item"]: e for e in manifest(served)["items"]}["groups/all"]
    assert group["tasks"][0]["parts"] == 2
    sent = len(fake.lemur.calls)
    assert run_cli("run", "lemur.yaml", "--progress", "plain").exit_code == 0
    assert len(fake.lemur.calls) == sent  # every request was cached


DIGEST = """\
version: 1
name: digest
inputs:
  - transcript_file: saved/call-*.json
tasks:
  digest:
    over: all
    context_window: 2000
    max_tokens: 200
    long: map-reduce
    prompt: |
      Digest of {{ items | length }} calls:
      {% for entry in items %}{{ entry.item.name }}: {{ entry.transcript.text }}
      {% endfor %}
"""


def test_a_group_over_the_window_is_read_in_slices_of_items_and_combined(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    saved_calls(served, 3)  # each call alone fits 2,000 tokens; the three do not
    (served / "digest.yaml").write_text(DIGEST)
    code, _, err = run_cli("run", "digest.yaml", "--progress", "plain")
    assert code == 0, err
    prompts = [c.messages[-1]["content"] for c in fake.gateway.calls]
    slices = sorted(p.split("\n")[1].split(":")[0] for p in prompts if "Digest of 1 " in p)
    assert slices == ["call-01", "call-02", "call-03"]
    reduce = prompts[-1]
    assert "Digest of 0 calls:" in reduce  # the request, without any item
    assert reduce.count("--- Part ") == 3
    group = {e["item"]: e for e in manifest(served)["items"]}["groups/all"]
    assert group["tasks"][0]["parts"] == 3
    sent = len(fake.gateway.calls)
    assert run_cli("run", "digest.yaml", "--progress", "plain").exit_code == 0
    assert len(fake.gateway.calls) == sent


def test_migrate_moves_a_lemur_task_over_all_items_to_a_gateway_task_reading_each(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    saved_calls(tmp_path, 2)
    (tmp_path / "lemur.yaml").write_text(LEMUR)
    assert run_cli("migrate", "lemur.yaml").exit_code == 0
    migrated = (tmp_path / "lemur.yaml").read_text()
    assert "{% for entry in items %}\n" in migrated
    assert "Transcript of {{ entry.item.name }}: {{ entry.transcript.text }}" in migrated
    assert run_cli("validate", "lemur.yaml").exit_code == 0


@pytest.mark.parametrize(
    "text", ["", "a", "a b c", "I a I a", "日本語の会議", "x" * 999, "1 2 3 4 5"]
)
def test_the_quick_bound_of_a_prompt_is_never_below_its_estimate(text: str) -> None:
    from runner.prompt.payloads import Payload
    from runner.prompt.window import _most_tokens, prompt_tokens
    from runner.recipe.model import TaskApi

    payload = Payload(TaskApi.GATEWAY, "/chat/completions", {"messages": [{"content": text}]})
    assert prompt_tokens(payload, text) <= _most_tokens(payload, text)
