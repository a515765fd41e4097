"""Fault injection: how a 60-item run survives faults, figures printed side by side.

Run from the repository root:

    .venv/bin/python benchmarks/fault_injection.py          # every scenario
    .venv/bin/python benchmarks/fault_injection.py 9 16     # only these

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
8. clock-skew    the fake's clock 2 h behind the client's (``created`` 2 h in the past)
                 and 30 % of submissions answered 500 after the job was made; a rerun.
9. bad listing   30 % ambiguous submissions while every list page is malformed:
                 9a ``transcripts`` not a list, 9b a ``null`` entry, 9c a ``prev_url``
                 with ``@`` (pointing at 127.0.0.1:9, where nothing listens).
10. non-JSON     one transcript download answered 200 with an HTML body.
11. key forms    the key echoed upper-cased, base64-encoded and ``\\u``-escaped, in a
                 failed transcript's error, in chat error bodies and in every reply.
12. CI secret    a provider whose ``api_key_env`` is AWS_SECRET_ACCESS_KEY (set):
                 ``validate``, then ``run``; nothing may reach the provider (the fake).
13. symlink      an item folder under out/ pre-created as a link to a folder outside.
14. empty store  state.db truncated to 0 bytes after a finished run, then a rerun.
15. cache clear  ``cache clear --yes`` while a run waits on its jobs, then a rerun.
16. bomb         a prompt doubling a string 40 times, given to ``validate`` under a
                 2 GB address-space limit and a timeout: 16a as issue 23 wrote it (a
                 ``set`` in a loop, which Jinja scopes to one iteration), 16b through a
                 ``namespace`` (which does double).
17. long name    a list row whose name and ``label`` are 300 bytes each, output.dir
                 ``{{ item.name }}{{ item.vars.label }}``: ``validate``, then ``run``.

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
              (outputs, run.json, .transcript-runner/*, ...) or in stdout/stderr, in
              any of its forms: as is, upper case, base64 (padded, unpadded, url-safe)
              and ``\\u``-escaped (either hex case).
- wall        seconds from the first runner start to the last runner exit.
- other       what a scenario measures besides: ``run.json`` (whether the last run
              wrote its manifest), ``outside`` (bytes written outside out/),
              ``peak MB`` and ``seconds`` (the bomb's child), ``refused`` (validate).
"""

from __future__ import annotations

import base64
import json
import os
import resource
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
    listing_with,
    listing_with_entry,
    malformed,
    raw_bytes,
    serve_in_process,
    status,
)

KEY = "sk-live-fi-4b7d2a91-do-not-leak"  # distinctive, so any leaked copy is found
WRONG_KEY = "sk-live-fi-wrong-0000-do-not-leak"
ITEMS = 60
RUN_TIMEOUT = 300.0  # seconds one runner subprocess may take before it is killed
BOMB_TIMEOUT = 60.0  # seconds the bomb's `validate` may take (it should refuse within 15)
BOMB_MEMORY = 2 * 1024**3  # its address-space limit: the benchmark never eats the machine
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
    peak_mb: float | None = None  # the child's peak RSS, when measured


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    started: float


def runner_env(base_url: str, key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AWS_"))}
    env.update(
        ASSEMBLYAI_API_KEY=key,
        ASSEMBLYAI_BASE_URL=base_url,
        ASSEMBLYAI_LLM_GATEWAY_URL=f"{base_url}/v1",
        TRANSCRIPT_RUNNER_TEST_MODE="1",
        **extra,
    )
    return env


def runner_command(*extra: str) -> list[str]:
    return cli_command("run", RECIPE, "--progress", "plain", *extra)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def start_runner(folder: Path, base_url: str, key: str, *extra: str) -> Running:
    return start_command(folder, runner_env(base_url, key), runner_command(*extra))


def start_command(folder: Path, env: dict[str, str], command: list[str]) -> Running:
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    return Running(process, time.monotonic())


def run_command(folder: Path, env: dict[str, str], *args: str) -> RunResult:
    """Any runner command to completion (``validate``, ``cache clear``, ``run`` ...)."""
    running = start_command(folder, env, cli_command(*args))
    return finish_runner(running, folder / "out" / "run.json")


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
    other: Callable[[Path, list[RunResult]], str] | None = None  # the "other" column
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


def table_rows(database: Path, table: str) -> int:
    """Rows in one table of the store; 0 while it is not there yet."""
    if not database.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


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


def ambiguous_submissions(fake: FakeAssemblyAI) -> None:
    """30 % of submissions make their job, then answer 500: the client cannot tell."""
    fake.faults.add(
        "POST /v2/transcript", after_processing(500), times=None, probability=0.3, seed=8
    )


def skewed_clock(fake: FakeAssemblyAI) -> None:
    """The server's clock 2 h behind the client's, and submissions in doubt."""
    fake.clock_offset = -2 * 3600
    ambiguous_submissions(fake)


def bad_listing(listing: Any) -> Callable[[FakeAssemblyAI], None]:
    def configure(fake: FakeAssemblyAI) -> None:
        ambiguous_submissions(fake)
        fake.faults.add("GET /v2/transcript", listing, times=None)

    return configure


def html_download(fake: FakeAssemblyAI) -> None:
    """Jobs done at once, so the first GET of a job is its download: answered 200 HTML."""
    fake.polls_to_processing = fake.polls_to_completed = 0
    page = "<html><body><h1>200 OK</h1>cached by proxy</body></html>"
    fake.faults.add("GET /v2/transcript/*", malformed(page), times=1)


def key_forms(key: str) -> dict[str, str]:
    """The forms a server may echo ``key`` in; the scan looks for every one."""
    b64 = base64.b64encode(key.encode()).decode()
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    return {
        "as is": key,
        "upper case": key.upper(),
        "base64": b64,
        "base64 unpadded": b64.rstrip("="),
        "base64 url-safe": base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        "\\u-escaped": escaped,
        "\\u-escaped upper hex": escaped.upper().replace("\\U", "\\u"),
    }


def echoed_forms(fake: FakeAssemblyAI) -> None:
    """The key upper-cased, base64-encoded and, on the wire, ``\\u``-escaped (valid JSON
    that decodes to the key) in a transcript error, chat errors and every reply."""
    forms = key_forms(KEY)
    said = f"{KEY} | {forms['upper case']} | {forms['base64']}"
    plain, escaped = KEY.encode(), forms["\\u-escaped"].encode()
    fake.rewrite = lambda body: body.replace(plain, escaped)
    fake.gateway.responder = lambda request: f"Reply quoting {said} end"
    fake.fail_audio("call-07", error=f"cannot fetch with Authorization: {said}")
    chat = "POST /v1/chat/completions"
    fake.faults.add(chat, status(400, body={"error": f"bad key {said}"}), every=5, times=None)
    fake.faults.add(chat, status(503, body=f"upstream rejected {said}"), every=7, times=None)


def slow_jobs(fake: FakeAssemblyAI) -> None:
    """Status answers take 1.5 s, so a run is still waiting on its jobs for a while."""
    for route in ("GET /v2/transcript", "GET /v2/transcript/*"):
        fake.faults.add(route, delay(1.5), times=None)


PROVIDER_RECIPE = (
    "version: 1\nname: fault\ninputs: [{list: calls.csv}]\n"
    "providers:\n"
    "  box: {type: openai-compatible, base_url: 'URL/v1', api_key_env: AWS_SECRET_ACCESS_KEY}\n"
    "tasks:\n"
    "  summary: {model: box/smollm2, prompt: 'Summarize {{ item.name }}: {{ transcript.text }}'}\n"
)

BOMB_RECIPE = (
    "version: 1\nname: fault\ninputs: [{list: calls.csv}]\n"
    "tasks:\n"
    "  summary:\n"
    '    prompt: "PROMPT"\n'
)
# As issue 23 wrote it. Jinja scopes a `set` inside a loop to one iteration, so this one
# renders "x": each iteration doubles the outer 'x' and forgets it.
SCOPED_BOMB = "{% set s = 'x' %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s }}"
# The same through a namespace, which a loop may change: 2**40 bytes if nothing stops it.
NAMESPACE_BOMB = (
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}"
)

LONG_NAME = "n" * 300  # one path component of 300 bytes; most file systems allow 255


def validate_then_run(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """`validate`, then `run`, of a recipe naming a CI secret for its provider."""
    (folder / RECIPE).write_text(PROVIDER_RECIPE.replace("URL", base_url))
    env = runner_env(base_url, key, AWS_SECRET_ACCESS_KEY=key)
    return [
        run_command(folder, env, "validate", RECIPE),
        run_command(folder, env, "run", RECIPE, "--progress", "plain"),
    ]


def linked_item_folder(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """out/fault/call-07 is a link to a folder outside out/ before the run starts."""
    outside = folder / "outside"
    outside.mkdir()
    (folder / "out" / "fault").mkdir(parents=True)
    (folder / "out" / "fault" / "call-07").symlink_to(outside, target_is_directory=True)
    return run_once(folder, base_url, key)


def bytes_outside(folder: Path, runs: list[RunResult]) -> str:
    outside = folder / "outside"
    written = sum(p.stat().st_size for p in outside.rglob("*") if p.is_file())
    names = sorted(p.name for p in outside.rglob("*") if p.is_file())
    return f"outside={written} B {names[:4] if names else ''}".strip()


def empty_store_then_rerun(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """A finished run, its state.db truncated to 0 bytes (as by a failed copy), a rerun."""
    first = run_runner(folder, base_url, key)
    state = folder / ".transcript-runner" / "state.db"
    for leftover in state.parent.glob("state.db-*"):
        leftover.unlink()
    state.write_bytes(b"")
    return [first, run_runner(folder, base_url, key)]


def cache_clear_mid_run(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """`cache clear --yes` once every job is in the ledger and the run waits on them."""
    running = start_runner(folder, base_url, key)
    database = folder / ".transcript-runner" / "state.db"
    while running.process.poll() is None and table_rows(database, "transcriptions") < ITEMS:
        if time.monotonic() - running.started > RUN_TIMEOUT:
            break
        time.sleep(0.02)
    live = running.process.poll() is None
    cleared = run_command(folder, runner_env(base_url, key), "cache", "clear", "--yes")
    cleared.stderr += f"\n[fault_injection: run live at clear: {live}]\n".encode()
    first = finish_runner(running, folder / "out" / "run.json")
    return [first, cleared, run_runner(folder, base_url, key)]


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BOMB_MEMORY, BOMB_MEMORY))


def run_limited(folder: Path, env: dict[str, str], *args: str) -> RunResult:
    """A command under BOMB_MEMORY and BOMB_TIMEOUT; its own peak RSS via wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            cli_command(*args), cwd=folder, env=env, stdout=out, stderr=err,
            preexec_fn=limit_memory,
        )  # fmt: skip
        usage, code = None, None
        while usage is None:
            pid, wait_status, rusage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                usage, code = rusage, os.waitstatus_to_exitcode(wait_status)
            elif time.monotonic() - started > BOMB_TIMEOUT:
                process.kill()
            else:
                time.sleep(0.01)
        process.returncode = code  # reaped by wait4: tell Popen so it does not wait again
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return RunResult(
            code, out.read(), err.read(), None, seconds, peak_mb=usage.ru_maxrss / 1024
        )


def validate_bomb(prompt: str) -> Callable[[Path, str, str], list[RunResult]]:
    def drive(folder: Path, base_url: str, key: str) -> list[RunResult]:
        (folder / RECIPE).write_text(BOMB_RECIPE.replace("PROMPT", prompt))
        return [run_limited(folder, runner_env(base_url, key), "validate", RECIPE)]

    return drive


def bomb_figures(folder: Path, runs: list[RunResult]) -> str:
    run = runs[-1]
    return f"peak MB={run.peak_mb:.0f} seconds={run.seconds:.1f}"


def long_item_name(folder: Path, base_url: str, key: str) -> list[RunResult]:
    """One list row names its item with 300 bytes, and gives a 300-byte ``label`` that
    output.dir appends to ``item.name`` (names are cut to 100 characters; vars are not)."""
    rows = [f"https://media.example.com/call-{n:02d}.mp3,call-{n:02d}," for n in range(ITEMS)]
    rows.append(f"https://media.example.com/long.mp3,{LONG_NAME},{LONG_NAME}")
    (folder / "calls.csv").write_text("url,name,label\n" + "\n".join(rows) + "\n")
    long_dir = (
        "output: {dir: 'out/{{ recipe.name }}/{{ item.name }}{{ item.vars.label | default() }}'}\n"
    )
    (folder / RECIPE).write_text(RECIPE_TEXT + long_dir)
    env = runner_env(base_url, key)
    return [
        run_command(folder, env, "validate", RECIPE),
        run_command(folder, env, "run", RECIPE, "--progress", "plain"),
    ]


def validate_refused(folder: Path, runs: list[RunResult]) -> str:
    return f"refused={'yes' if runs[0].code == 3 else 'no'}"


def manifest_written(folder: Path, runs: list[RunResult]) -> str:
    return f"run.json={'yes' if runs[-1].manifest is not None else 'no'}"


SCENARIOS = [
    Scenario("1 baseline", no_faults, run_once),
    Scenario("2 post-fault+rerun", post_faults, run_twice),
    Scenario("3 5xx bursts+rerun", burst_faults, run_twice),
    Scenario("4 echoed key", echoed_key_faults, run_once),
    Scenario("5 kill-9+rerun", slow_llm, kill_then_rerun),
    Scenario("6 concurrent", no_faults, run_concurrently),
    Scenario("7 wrong key", no_faults, run_once, key=WRONG_KEY),
    Scenario("8 clock -2h+ambiguous", skewed_clock, run_twice),
    Scenario(
        "9a listing not a list",
        bad_listing(listing_with(transcripts={"0": None})),
        run_once,
        other=manifest_written,
    ),
    Scenario(
        "9b listing null entry",
        bad_listing(listing_with_entry(None)),
        run_once,
        other=manifest_written,
    ),
    Scenario(
        "9c prev_url with @",
        bad_listing(listing_with(prev_url="@127.0.0.1:9/v2/transcript?limit=200")),
        run_once,
        other=manifest_written,
    ),
    Scenario("10 non-JSON download", html_download, run_once),
    Scenario("11 key forms echoed", echoed_forms, run_once),
    Scenario("12 AWS key for provider", no_faults, validate_then_run, other=validate_refused),
    Scenario("13 symlink under out", no_faults, linked_item_folder, other=bytes_outside),
    Scenario("14 0-byte state.db", no_faults, empty_store_then_rerun),
    Scenario("15 cache clear mid-run", slow_jobs, cache_clear_mid_run),
    Scenario("16a bomb as in #23", no_faults, validate_bomb(SCOPED_BOMB), other=bomb_figures),
    Scenario("16b bomb, namespace", no_faults, validate_bomb(NAMESPACE_BOMB), other=bomb_figures),
    Scenario("17 300-byte name", no_faults, long_item_name, other=validate_refused),
]


# --- measuring -------------------------------------------------------------------------


def write_inputs(folder: Path) -> None:
    rows = "\n".join(f"https://media.example.com/call-{n:02d}.mp3" for n in range(ITEMS))
    (folder / "calls.csv").write_text(f"url\n{rows}\n")
    (folder / RECIPE).write_text(RECIPE_TEXT)


def key_hits(folder: Path, runs: list[RunResult], key: str) -> tuple[int, list[str]]:
    """Bytes of ``key``, in any of its forms, found in every file under ``folder`` and in
    the captured streams."""
    needles = {name: form.encode() for name, form in key_forms(key).items()}
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    places = [(str(path.relative_to(folder)), path) for path in files]
    total, where = 0, []
    streams = [
        (f"run{index} {name}", data)
        for index, run in enumerate(runs, start=1)
        for name, data in (("stdout", run.stdout), ("stderr", run.stderr))
    ]
    for place, source in [*places, *streams]:
        try:
            data = source.read_bytes() if isinstance(source, Path) else source
        except OSError:
            continue
        for name, needle in needles.items():
            count = data.count(needle)
            if count:
                total += count * len(needle)
                where.append(f"{place} x{count} ({name})")
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
        other = scenario.other(folder, runs) if scenario.other else ""
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
        "other": other,
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
    "requests", "faults", "tb", "key", "wall", "other",
]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    print("  ".join("-" * widths[c] for c in COLUMNS))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in COLUMNS))


def main() -> None:
    """Every scenario, or those whose number is given (``16 9a``; ``9`` runs 9a to 9c)."""
    wanted = sys.argv[1:]
    chosen = [
        s
        for s in SCENARIOS
        if not wanted
        or any(
            s.name.split()[0].rstrip("abc") == w.rstrip("abc") or s.name.split()[0] == w
            for w in wanted
        )
    ]
    rows, notes = [], []
    for scenario in chosen:
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
