"""Benchmark: the runner at a provider's limits, at default settings.

Run from the repository root:

    .venv/bin/python benchmarks/bench_limits.py [--items 300] [--only gateway|local]

Prints figures; asserts nothing. Real pacing: test mode is off for every run.

``gateway``: the LLM Gateway stand-in (tests/fakeapi.py, in its own process) enforces a
fixed window per model with AssemblyAI's headers (``x-ratelimit-limit``,
``-remaining``, ``-reset``, ``-model``; a 429 with ``retry-after`` past the limit):
``--limit-per-window`` requests per ``--window`` seconds (60 per 6 s: ten times the
paid account's 30 a minute, so the benchmark takes a minute, not an hour). The recipe
has three tasks over saved transcripts (nothing to transcribe): ``summary`` and
``topics`` on claude-sonnet-4-6 (the binding model: two requests per item) and
``title`` on claude-haiku-4-5-20251001. In one state folder the script runs:

1. a warm-up run of one other item, so the state folder has seen the headers;
2. ``plan --format json``: its forecast (the rate it learned from the last run);
3. the run of ``--items`` items, measured.

It prints the rate reached on the binding model (its answered requests, first to last,
against the allowed ``limit / window``), the share of LLM requests answered 429, and
the forecast against the run's wall time.

``local``: a stand-in for ``llama-server --parallel 2`` (tests/fakelocal.py, its own
process): 2 slots, each reply taking ``--service`` seconds, requests beyond the slots
queued. The recipe (``timeouts: {llm: ...}`` at 8 × service) sends one task per saved
transcript with ``--llm-url``. It prints the timeouts (failed tasks), the most requests
the server held at once, and the throughput against the server's capacity
(2 / service), first arrival to last answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

KEY = "bench-limits-key"
BINDING = "claude-sonnet-4-6"
OTHER = "claude-haiku-4-5-20251001"
RECIPE = (
    "version: 1\nname: limits\ninputs: [{list: LIST}]\n"
    "tasks:\n"
    f"  summary: {{model: {BINDING}, prompt: 'Summarize {{{{ item.name }}}}: "
    "{{ transcript.text[:99] }}'}\n"
    f"  topics: {{model: {BINDING}, prompt: 'Topics of {{{{ item.name }}}}: "
    "{{ transcript.text[:99] }}'}\n"
    f"  title: {{model: {OTHER}, prompt: 'Title {{{{ item.name }}}}: "
    "{{ transcript.text[:99] }}'}\n"
)


def runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def env_for(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRANSCRIPT_RUNNER_TEST_MODE"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if url is not None:
        env.update(
            ASSEMBLYAI_API_KEY=KEY,
            ASSEMBLYAI_BASE_URL=url,
            ASSEMBLYAI_LLM_GATEWAY_URL=f"{url}/v1",
        )
    return env


def write_items(folder: Path, name: str, items: int, prefix: str) -> None:
    """A list of saved transcripts, each its own item (one file, many names)."""
    rows = "\n".join(
        json.dumps({"transcript_file": "wildfires.json", "name": f"{prefix}-{n:05d}"})
        for n in range(items)
    )
    (folder / name).write_text(rows + "\n")


STARTED: list[float] = []  # when each command began (time.monotonic, as the fake's)


def timed(command: list[str], folder: Path, env: dict[str, str]) -> tuple[int, float, str]:
    began = time.monotonic()
    STARTED.append(began)
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    return done.returncode, time.monotonic() - began, done.stdout + done.stderr


# --- the Gateway at its limits ------------------------------------------------------------


def gateway_report(fake: Any) -> dict[str, Any]:
    calls = [r for r in fake.history if r.path.endswith("/chat/completions")]
    return {
        "requests": len(calls),
        "refused": sum(1 for r in calls if r.status == 429),
        "answered": {
            model: sorted(r.at for r in calls if r.model == model and r.status == 200)
            for model in (BINDING, OTHER)
        },
    }


def bench_gateway(args: argparse.Namespace) -> None:
    from fakeapi import FakeAssemblyAI, serve_in_process

    fake = FakeAssemblyAI(api_key=KEY)
    fake.gateway.responder = lambda request: "- a point\n- another point"
    fake.gateway.rate_limit_per_minute = args.limit_per_window
    fake.gateway.rate_window_seconds = args.window
    allowed = args.limit_per_window / args.window
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as name:
        folder = Path(name)
        shutil.copy(ROOT / "recipes" / "transcripts" / "wildfires.json", folder)
        write_items(folder, "warmup.jsonl", 1, "warmup")
        write_items(folder, "calls.jsonl", args.items, "call")
        (folder / "warmup.yaml").write_text(RECIPE.replace("LIST", "warmup.jsonl"))
        (folder / "recipe.yaml").write_text(RECIPE.replace("LIST", "calls.jsonl"))
        with serve_in_process(fake, gateway_report) as server:
            env = env_for(server.base_url)  # type: ignore[attr-defined]
            warm = runner("run", "warmup.yaml", "--progress", "plain", "--out", "warm")
            code, _, output = timed(warm, folder, env)
            if code != 0:
                print(f"warm-up: exit {code}\n{output[-2000:]}")
            code, _, output = timed(runner("plan", "recipe.yaml", "--format", "json"), folder, env)
            forecast = json.loads(output)["forecast"]
            code, wall, output = timed(
                runner("run", "recipe.yaml", "--progress", "plain"), folder, env
            )
            if code != 0:
                print(f"run: exit {code}\n{output[-2000:]}")
        seen = server.result or {}
    if os.environ.get("BENCH_DUMP"):
        Path(os.environ["BENCH_DUMP"]).write_text(json.dumps(seen))
    answered = seen["answered"][BINDING][2:]  # the warm-up's two are not the run's
    run_requests = seen["requests"]
    rate = (len(answered) - 1) / (answered[-1] - answered[0]) if len(answered) > 1 else 0.0
    print(
        f"gateway: N={args.items} items, 3 tasks ({BINDING} x2, {OTHER} x1), "
        f"{args.limit_per_window} requests per {args.window:g} s per model"
    )
    print(f"  run exit code: {code}; wall {wall:.1f} s")
    if answered:
        first, last = answered[0] - STARTED[-1], STARTED[-1] + wall - answered[-1]
        print(f"  first answered {first:.1f} s after the start; exit {last:.1f} s after the last")
    print(
        f"  binding model: {len(answered)} answered at {rate:.3f}/s of {allowed:.3f}/s allowed "
        f"= {100 * rate / allowed:.1f} %"
    )
    print(
        f"  LLM requests answered 429: {seen['refused']} of {run_requests} "
        f"= {100 * seen['refused'] / max(run_requests, 1):.2f} % (warm-up included)"
    )
    print(
        f"  plan's forecast: {forecast['seconds']:.1f} s, bound by {forecast['bottleneck']}; "
        f"wall {wall:.1f} s; forecast / wall = {forecast['seconds'] / wall:.3f}"
    )


# --- a local server with 2 slots --------------------------------------------------------------


def local_report(fake: Any) -> dict[str, Any]:
    return {"times": list(fake.chat_times), "peak": fake.chat_peak}


def bench_local(args: argparse.Namespace) -> None:
    from fakeapi import serve_in_process
    from fakelocal import FakeLocalLLM

    server_fake = FakeLocalLLM("llama-server", slots=2, service_seconds=args.service)
    timeout = 8 * args.service
    recipe = (
        "version: 1\nname: local\ninputs: [{list: calls.jsonl}]\n"
        f"timeouts: {{llm: {timeout:g}}}\n"
        "tasks:\n  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:99] }}'}\n"
    )
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as name:
        folder = Path(name)
        shutil.copy(ROOT / "recipes" / "transcripts" / "wildfires.json", folder)
        write_items(folder, "calls.jsonl", args.local_items, "call")
        (folder / "recipe.yaml").write_text(recipe)
        with serve_in_process(server_fake, local_report) as server:  # type: ignore[arg-type]
            url = f"{server.base_url}/v1"  # type: ignore[attr-defined]
            command = runner("run", "recipe.yaml", "--progress", "plain", "--llm-url", url)
            # A key, though nothing goes to AssemblyAI (a port nothing listens on).
            code, wall, output = timed(command, folder, env_for("http://127.0.0.1:9"))
        seen = server.result or {}
        manifest = json.loads((folder / "out" / "run.json").read_text())
    times = seen["times"]
    span = max(end for _, end in times) - min(start for start, _ in times)
    capacity = 2 / args.service
    failed = manifest["summary"]["tasks"].get("failed", 0)
    print(
        f"local: N={args.local_items} calls, 2 slots, {args.service:g} s each, "
        f"timeouts.llm {timeout:g} s"
    )
    print(f"  run exit code: {code}; wall {wall:.1f} s; tasks failed (timeouts): {failed}")
    print(f"  most requests the server held at once: {seen['peak']}")
    throughput = len(times) / span
    print(
        f"  throughput {throughput:.2f}/s of {capacity:.2f}/s capacity "
        f"= {100 * throughput / capacity:.1f} %"
    )
    if code != 0:
        print(output[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300, help="gateway: items (default 300)")
    parser.add_argument("--limit-per-window", type=int, default=60)
    parser.add_argument("--window", type=float, default=6.0, help="seconds")
    parser.add_argument("--local-items", type=int, default=80, help="local: calls (default 80)")
    parser.add_argument("--service", type=float, default=0.5, help="local: seconds a reply")
    parser.add_argument("--only", choices=["gateway", "local"], default=None)
    args = parser.parse_args()
    if args.only in (None, "gateway"):
        bench_gateway(args)
    if args.only in (None, "local"):
        bench_local(args)


if __name__ == "__main__":
    main()
