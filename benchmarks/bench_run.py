"""Benchmark: a run over many items against the fake AssemblyAI, with faults.

Prints figures; asserts nothing (timings vary with the machine). Run:

    .venv/bin/python benchmarks/bench_run.py [--items 300] [--llm-delay 0.1] [--llm 16]

The fake runs in its own process. Every Gateway reply takes --llm-delay seconds on the
server; the ideal time of the LLM stage is (calls x delay) / --llm, the best any
client limited to --llm calls at once can do. Transcription is poll-bound: a job
finishes after 2-4 status checks, and the first check waits 1 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakeapi import FakeAssemblyAI, delay, serve_in_process, status

from runner.api.transcripts import poll_delays
from runner.cli import main


def report(fake: FakeAssemblyAI) -> dict[str, Any]:
    return {
        "submissions": len(fake.submissions),
        "duplicates": fake.duplicate_submissions(),
        "violations_after_grace": len(fake.retry_after_violations(grace=0.4)),
        "requests": len(fake.history),
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--llm-delay", type=float, default=0.1)
    parser.add_argument("--llm", type=int, default=16)
    parser.add_argument(
        "--rate-limit-every",
        type=int,
        default=97,
        help="a 429 (Retry-After: 1) every N calls; 0: none",
    )
    args = parser.parse_args()

    fake = FakeAssemblyAI(api_key="bench-key")
    fake.gateway.responder = lambda request: "- a point\n- another point"
    # The fake applies the first matching rule, so the specific rules come first.
    for n in range(0, args.items, 50):
        fake.fail_audio(f"call-{n:04d}")
    for n in range(args.items):
        fake.on_audio(f"call-{n:04d}", polls_to_processing=1, polls_to_completed=2 + n % 3)
    if args.rate_limit_every:
        fake.faults.add(
            "POST /v1/chat/completions",
            status(429, retry_after=1),
            every=args.rate_limit_every,
            times=None,
        )
    fake.faults.add("POST /v1/chat/completions", status(502), every=41, times=None)
    fake.faults.add("GET /v2/transcript/*", status(503), every=23, times=None)
    fake.faults.add("POST /v1/chat/completions", delay(args.llm_delay), times=None)

    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        rows = "\n".join(f"https://media.example.com/call-{n:04d}.mp3" for n in range(args.items))
        Path("calls.csv").write_text(f"url\n{rows}\n")
        Path("bench.yaml").write_text(
            "version: 1\nname: bench\ninputs: [{list: calls.csv}]\n"
            # Item names in the prompts keep the requests distinct, as real ones are;
            # otherwise the reply cache would answer most of them.
            "tasks:\n  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:99] }}'}\n"
            "  headline: {needs: [summary], prompt: 'Title {{ item.name }}: {{ tasks.summary }}'}\n"
        )
        with serve_in_process(fake, report) as server:
            url = server.base_url  # type: ignore[attr-defined]
            os.environ.update(
                ASSEMBLYAI_API_KEY="bench-key",
                ASSEMBLYAI_BASE_URL=url,
                ASSEMBLYAI_LLM_GATEWAY_URL=f"{url}/v1",
            )
            began = time.monotonic()
            try:
                main(["run", "bench.yaml", "--progress", "plain", "--limit", f"llm={args.llm}",
                      "--limit", "items=512", "--limit", "polls=64"])  # fmt: skip
            except SystemExit as exited:
                code = exited.code
            wall = time.monotonic() - began
        manifest = json.loads(Path("out/run.json").read_text())
        report_bytes = Path("out/report.html").stat().st_size
    summary = manifest["summary"]
    calls = summary["tasks"].get("ok", 0) + summary["tasks"].get("failed", 0)
    ideal_llm = calls * args.llm_delay / args.llm
    print(f"items: {args.items} ({summary['items']}), exit code {code}", file=sys.stderr)
    print(f"wall: {wall:.2f} s", file=sys.stderr)
    print(
        f"report.html: {report_bytes / 1e6:.1f} MB "
        f"({report_bytes / 1e3 / max(args.items, 1):.0f} kB per item)",
        file=sys.stderr,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process: the runner, not the fake
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"runner CPU: {cpu:.1f} s ({1000 * cpu / max(args.items, 1):.1f} ms per item); "
        f"peak RSS: {usage.ru_maxrss / 1024:.0f} MB",
        file=sys.stderr,
    )
    print(
        f"LLM stage ideal: {calls} calls x {args.llm_delay} s / {args.llm} = {ideal_llm:.2f} s",
        file=sys.stderr,
    )
    floor = sum(list(itertools.islice(poll_delays(None), 4)))
    print(
        f"transcription floor: 4 status checks on the poll schedule = {floor:.2f} s",
        file=sys.stderr,
    )
    print(f"polls per transcript: {summary['polls_per_transcript']}", file=sys.stderr)
    print(f"retries: {summary['retries']}; server saw: {server.result}", file=sys.stderr)


if __name__ == "__main__":
    main_bench()
