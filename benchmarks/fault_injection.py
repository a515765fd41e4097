"""Fault injection: how a 60-item run survives faults, figures printed side by side.

Run from the repository root:

    .venv/bin/python benchmarks/fault_injection.py

Prints figures; asserts nothing. Each scenario gets a fresh temporary folder holding a
CSV of 60 audio URLs and a recipe with two LLM tasks (the second ``needs`` the first;
both prompts name the item, so no two requests are alike). The fake AssemblyAI
(tests/fakeapi.py) is served from its own process, one per scenario, and stays up for
every run of that scenario; the runner runs as a real subprocess
(``python -m runner run ... --progress plain``) in test mode
(TRANSCRIPT_RUNNER_TEST_MODE=1: no poll or backoff sleeps; Retry-After still honoured).

Scenarios:

1. baseline      no faults.
2. post-fault    POST /v2/transcript answers 500/502/503, a dropped line or garbage
                 *after* the job was created (p=0.3, seeded); then the same command again.
3. bursts        5xx (500 and 503, every=3) on transcript polls and chat completions.
4. echoed-key    chat completion errors whose bodies contain the API key.
5. kill-9        SIGKILL once the state store has 10 rows, then a rerun to completion.
6. concurrent    two runs at once sharing --state-dir, each with its own --out.
7. wrong-key     a key the fake refuses: the run should stop at the first 401, exit 2.

Columns:

- exit        exit codes of the run(s), e.g. ``1,0`` for run and rerun (-9: killed).
- ok/failed   items from the last manifest's summary (``a|b`` for the concurrent pair).
- submits     POST /v2/transcript jobs the fake created; ``dup``: extra jobs for an
              audio URL already submitted (``fake.duplicate_submissions()``).
- llm         chat completions the fake served (``fake.gateway.calls``); ``dup``: extra
              calls whose request body had already been served.
- requests    every HTTP request the fake saw; ``faults``: how many got a fault.
- tb          whether "Traceback" appeared in any stdout/stderr.
- key         bytes of the API key found in any file under the scenario's folder
              (outputs, run.json, .transcript-runner/*, ...) or in stdout/stderr.
- wall        seconds from the first runner start to the last runner exit.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakeapi import (
    FakeAssemblyAI,
    after_processing,
    after_processing_reset,
    delay,
    raw_bytes,
    serve_in_process,
    status,
)

KEY = "sk-live-fi-4b7d2a91-do-not-leak"  # distinctive, so any leaked copy is found
WRONG_KEY = "sk-live-fi-wrong-0000-do-not-leak"
ITEMS = 60
RUN_TIMEOUT = 300.0  # seconds one runner subprocess may take before it is killed
RECIPE = "fault.yaml"
RECIPE_TEXT = (
    "version: 1\nname: fault\ninputs: [{list: calls.csv}]\n"
    "tasks:\n"
    "  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:99] }}'}\n"
    "  headline: {needs: [summary], prompt: 'Title {{ item.name }}: {{ tasks.summary }}'}\n"
)


# --- what the server saw (computed in the server process after it stops) --------------


def server_report(fake: FakeAssemblyAI) -> dict[str, Any]:
    """Picklable counts of what the fake recorded."""
    duplicates = fake.duplicate_submissions()
    bodies = Counter(json.dumps(call.request, sort_keys=True) for call in fake.gateway.calls)
    repeated = [body for body, n in bodies.items() if n > 1]
    return {
        "submissions": len(fake.submissions),
        "dup_submissions": sum(n - 1 for n in duplicates.values()),
        "dup_urls": len(duplicates),
        "llm_calls": len(fake.gateway.calls),
        "dup_llm": sum(n - 1 for n in bodies.values() if n > 1),
        "dup_llm_prompts": sorted(prompt_start(json.loads(body)) for body in repeated)[:6],
        "requests": len(fake.history),
        "faults": sum(1 for r in fake.history if r.fault),
        "statuses": dict(Counter(r.status for r in fake.history)),
    }


def prompt_start(request: dict[str, Any]) -> str:
    """The first words of a request's last message: which task and item it was."""
    messages = request.get("messages") or [{"content": request.get("prompt", "")}]
    return str(messages[-1].get("content", ""))[:24]


# --- one runner subprocess -------------------------------------------------------------


@dataclass
class RunResult:
    code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    manifest: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    started: float


def runner_env(base_url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(
        ASSEMBLYAI_API_KEY=key,
        ASSEMBLYAI_BASE_URL=base_url,
        ASSEMBLYAI_LLM_GATEWAY_URL=f"{base_url}/v1",
        TRANSCRIPT_RUNNER_TEST_MODE="1",
    )
    return env


def runner_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "runner", "run", RECIPE, "--progress", "plain", *extra]


def start_runner(folder: Path, base_url: str, key: str, *extra: str) -> Running:
    process = subprocess.Popen(
        runner_command(*extra),
        cwd=folder,
        env=runner_env(base_url, key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return Running(process, time.monotonic())


def finish_runner(running: Running, manifest: Path) -> RunResult:
    """Wait for the process (killing it after RUN_TIMEOUT) and read its manifest."""
    process = running.process
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        err += b"\n[fault_injection: killed after timeout]\n"
    seconds = time.monotonic() - running.started
    return RunResult(process.returncode, out, err, read_manifest(manifest), seconds)


def run_runner(folder: Path, base_url: str, key: str) -> RunResult:
    """One run to completion, writing to out/."""
    return finish_runner(start_runner(folder, base_url, key), folder / "out" / "run.json")


def read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- scenarios -------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    configure: Callable[[FakeAssemblyAI], None]
    drive: Callable[[Path, str, str], list[RunResult]]  # (folder, base URL, key) -> runs
    key: str = KEY  # the key the runner is given (and which the scan looks for)
    notes: list[str] = field(default_factory=list)


def no_faults(fake: FakeAssemblyAI) -> None:
    pass


def post_faults(fake: FakeAssemblyAI) -> None:
    """Five after-processing faults on job creation, together firing on ~30% of POSTs."""
    faults = [
        after_processing(500),
        after_processing(502),
        after_processing(503),
        after_processing_reset(),
        raw_bytes(b"garbage\r\n\r\n", after_processing=True),
    ]
    # The first rule that fires wins, so each gets p with 1 - (1 - p)^5 = 0.3.
    each = 1 - 0.7 ** (1 / len(faults))
    for seed, fault in enumerate(faults, start=11):
        fake.faults.add("POST /v2/transcript", fault, times=None, probability=each, seed=seed)


def burst_faults(fake: FakeAssemblyAI) -> None:
    """Two every=3 rules per route: 5xx on ~5/9 of requests, in runs of up to two."""
    for route in ("GET /v2/transcript/*", "POST /v1/chat/completions"):
        fake.faults.add(route, status(500), times=None, every=3)
        fake.faults.add(route, status(503), times=None, every=3)


def echoed_key_faults(fake: FakeAssemblyAI) -> None:
    """Error bodies that repeat the key: JSON 400s, a text 400 and a text 503."""
    chat = "POST /v1/chat/completions"
    fake.faults.add(chat, status(400, body={"error": f"Authorization: {KEY}"}), every=5, times=None)
    fake.faults.add(chat, status(400, body=f"bad header Bearer {KEY}"), every=7, times=None)
    fake.faults.add(chat, status(503, body=f"upstream rejected key={KEY}"), every=11, times=None)


def slow_llm(fake: FakeAssemblyAI) -> None:
    """A little latency on completions, so the kill lands while work is in flight."""
    fake.faults.add("POST /v1/chat/completions", delay(0.05), times=None)


def run_once(folder: Path, base_url: str, key: str) -> list[RunResult]:
    return [run_runner(folder, base_url, key)]


def run_twice(folder: Path, base_url: str, key: str) -> list[RunResult]:
    return [run_runner(folder, base_url, key), run_runner(folder, base_url, key)]


def state_rows(database: Path) -> int:
    """Rows in ``intents`` + ``transcriptions``; 0 while the store is not there yet."""
    if not database.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2) as db:
            return sum(
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("intents", "transcriptions")
            )
    except sqlite3.Error:
        return 0


def kill_then_rerun(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """SIGKILL the run once the store holds 10 rows, then run again to completion."""
    running = start_runner(folder, base_url, key)
    database = folder / ".transcript-runner" / "state.db"
    while running.process.poll() is None and state_rows(database) < 10:
        if time.monotonic() - running.started > RUN_TIMEOUT:
            break
        time.sleep(0.01)
    rows = state_rows(database)
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGKILL)
    killed = finish_runner(running, folder / "out" / "run.json")
    killed.stderr += f"\n[fault_injection: {rows} state rows at kill]\n".encode()
    return [killed, run_runner(folder, base_url, key)]


def run_concurrently(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """Two runs at once, one state folder, two output folders."""
    outs = ("out-a", "out-b")
    running = [
        start_runner(folder, base_url, key, "--state-dir", "shared", "--out", o) for o in outs
    ]
    return [
        finish_runner(run, folder / out / "run.json")
        for run, out in zip(running, outs, strict=True)
    ]


SCENARIOS = [
    Scenario("1 baseline", no_faults, run_once),
    Scenario("2 post-fault+rerun", post_faults, run_twice),
    Scenario("3 5xx bursts+rerun", burst_faults, run_twice),
    Scenario("4 echoed key", echoed_key_faults, run_once),
    Scenario("5 kill-9+rerun", slow_llm, kill_then_rerun),
    Scenario("6 concurrent", no_faults, run_concurrently),
    Scenario("7 wrong key", no_faults, run_once, key=WRONG_KEY),
]


# --- measuring -------------------------------------------------------------------------


def write_inputs(folder: Path) -> None:
    rows = "\n".join(f"https://media.example.com/call-{n:02d}.mp3" for n in range(ITEMS))
    (folder / "calls.csv").write_text(f"url\n{rows}\n")
    (folder / RECIPE).write_text(RECIPE_TEXT)


def key_hits(folder: Path, runs: list[RunResult], key: str) -> tuple[int, list[str]]:
    """Bytes of ``key`` found in every file under ``folder`` and in the captured streams."""
    needle = key.encode()
    total, where = 0, []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            count = path.read_bytes().count(needle)
        except OSError:
            continue
        if count:
            total += count * len(needle)
            where.append(f"{path.relative_to(folder)} x{count}")
    for index, run in enumerate(runs):
        for stream, data in (("stdout", run.stdout), ("stderr", run.stderr)):
            count = data.count(needle)
            if count:
                total += count * len(needle)
                where.append(f"run{index + 1} {stream} x{count}")
    return total, where


def items_of(run: RunResult) -> str:
    """ok/failed items, from the summary (or counted from the items list)."""
    if run.manifest is None:
        return "-"
    counts = run.manifest.get("summary", {}).get("items")
    if not isinstance(counts, dict):
        counts = Counter(i.get("status") for i in run.manifest.get("items", []))
    return f"{counts.get('ok', 0)}/{counts.get('failed', 0)}"


def failure_causes(run: RunResult) -> Counter[str]:
    """Distinct item and task errors in the run's manifest, with their counts."""
    causes: Counter[str] = Counter()
    for item in (run.manifest or {}).get("items", []):
        if item.get("error"):
            causes[f"item: {item['error'][:110]}"] += 1
        for task in item.get("tasks", []):
            if task.get("status") == "failed":
                causes[f"{task.get('task')}: {str(task.get('error'))[:110]}"] += 1
    return causes


def last_stderr_line(run: RunResult) -> str:
    lines = [line for line in run.stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def measure(scenario: Scenario) -> dict[str, Any]:
    """Run one scenario in a fresh folder against a fresh fake; return its row."""
    fake = FakeAssemblyAI(api_key=KEY)
    scenario.configure(fake)
    with tempfile.TemporaryDirectory(prefix="fault-") as name:
        folder = Path(name)
        write_inputs(folder)
        with serve_in_process(fake, server_report) as server:
            began = time.monotonic()
            url = server.base_url  # type: ignore[attr-defined]
            runs = scenario.drive(folder, url, scenario.key)
            wall = time.monotonic() - began
        leaked, where = key_hits(folder, runs, scenario.key)
    seen = server.result or {}
    last = runs[-1]
    items = "|".join(items_of(r) for r in runs) if scenario.name.startswith("6") else items_of(last)
    row = {
        "scenario": scenario.name,
        "exit": ",".join(str(r.code) for r in runs),
        "ok/failed": items,
        "submits": seen.get("submissions", "?"),
        "dup": seen.get("dup_submissions", "?"),
        "llm": seen.get("llm_calls", "?"),
        "llm dup": seen.get("dup_llm", "?"),
        "requests": seen.get("requests", "?"),
        "faults": seen.get("faults", "?"),
        "tb": "yes" if any(b"Traceback" in r.stderr + r.stdout for r in runs) else "no",
        "key": leaked,
        "wall": f"{wall:.1f}",
    }
    scenario.notes.extend(f"key found in {place}" for place in where)
    scenario.notes.append(f"server statuses: {seen.get('statuses')}")
    if seen.get("dup_llm_prompts"):
        scenario.notes.append(f"LLM requests sent twice, e.g. {seen['dup_llm_prompts']}")
    for index, run in enumerate(runs, start=1):
        scenario.notes.append(
            f"run{index} exit {run.code} in {run.seconds:.1f} s: {last_stderr_line(run)}"
        )
        for cause, count in failure_causes(run).most_common(4):
            scenario.notes.append(f"run{index} failed x{count} {cause}")
    return row


# --- printing --------------------------------------------------------------------------

COLUMNS = [
    "scenario", "exit", "ok/failed", "submits", "dup", "llm", "llm dup",
    "requests", "faults", "tb", "key", "wall",
]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    print("  ".join("-" * widths[c] for c in COLUMNS))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in COLUMNS))


def main() -> None:
    rows, notes = [], []
    for scenario in SCENARIOS:
        print(f"running {scenario.name} ...", file=sys.stderr, flush=True)
        try:
            rows.append(measure(scenario))
        except Exception as error:  # one broken scenario must not hide the others
            traceback.print_exc()
            rows.append({"scenario": scenario.name, "exit": f"ERROR {type(error).__name__}"})
            scenario.notes.append(f"scenario error: {error!r}")
        notes += [f"{scenario.name}: {note}" for note in scenario.notes]
    print()
    print_table(rows)
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
