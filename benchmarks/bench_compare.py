"""Benchmark: the runner against a minimal asyncio client, on the same fixed-latency server.

Run from the repository root:

    .venv/bin/python benchmarks/bench_compare.py [--items 200] [--transcribe-seconds 5]
        [--latency 0.1] [--concurrency 50] [--poll-interval 3]

Prints figures; asserts nothing. Real pacing is measured: test mode
(TRANSCRIPT_RUNNER_TEST_MODE) is switched off for every client.

The server. Each measurement gets a fresh fake AssemblyAI (tests/fakeapi.py) served
from its own forked process (``serve_in_process``), so its CPU never competes with the
client's GIL. In clock mode (``complete_after=T``) every transcript is ``completed``
exactly T seconds after it was submitted, however often it is polled, and every chat
completion is answered after L seconds (a ``delay(L)`` fault on every call). The fake
records each status GET, so it reports status requests per transcript and how late
completion was noticed (the first GET that answered ``completed`` minus the moment the
job completed).

The work. N audio URLs in a CSV; per item one transcription, then three LLM calls:
``summary`` and ``topics`` once the transcript is there, ``headline`` once ``summary``
is. Every prompt names the item, so no two requests are alike.

The clients, each a subprocess of this script, one at a time:

- ``runner --limit C``: ``python -m runner run recipe.yaml --progress plain --limit
  transcriptions=C --limit llm=C`` (plus any ``--runner-limit KIND=N``);
- ``runner --limit C items=N``: the same, with every item under way at once (the
  best setting for the pool of items; the row above shows the default pool);
- ``runner defaults``: the same command without ``--limit``: the tool's own limits,
  which adapt to the server (submissions from 32 up to 200, LLM calls from 8 up to
  256, see runner/api/concurrency.py);
- ``assemblyai SDK, C threads`` (only when the ``assemblyai`` package is installed):
  this script with ``--sdk-client``: the official SDK as its examples use it, one
  item per thread of a pool of C (``Transcriber().transcribe``, polling every 3 s,
  then three chat completions in order, through ``httpx``: the SDK's own
  ``LLMGateway`` client rejects the Gateway's recorded reply);
- ``minimal asyncio``: this script with ``--minimal-client``: aiohttp, one coroutine per
  item, at most C submissions and C chat completions at once, polls unbounded. Like the
  official SDKs it sleeps ``--poll-interval`` (3 s) before every status check. It
  keeps only the text of a transcript, retries nothing and writes no files (the runner
  keeps a state store, a manifest, ``transcript.json`` and every output), so it is a
  floor, not a rival;
- ``minimal asyncio + files``: the same client writing what the runner writes per item:
  the transcript's bytes as received to ``out/NAME/transcript.json`` and each reply to
  ``out/NAME/TASK.md``, plainly, on its event loop (no temporary file and rename, no
  state store, no manifest). Creating files costs system CPU that depends on the
  file system far more than on the client: compare the two minimal rows to see it, and
  run with ``--folder-root /dev/shm`` to take the disk out of every row.

The fake's cost. Serving a completed transcript (about 100 kB of JSON, deep-copied per
GET) takes the server a few milliseconds; when many jobs complete at once the replies
queue in its one event loop, which adds to the lateness and the wall time of every
client alike. ``srv CPU`` shows how busy it was.

Running the minimal client as a subprocess too makes the figures comparable: both pay
interpreter start-up and imports inside the wall time, and both are measured the same
way. CPU and peak RSS come from ``os.wait4`` on the child: its CPU equals the
``RUSAGE_CHILDREN`` delta across the run (no other child is reaped meanwhile), and its
``ru_maxrss`` is that child's own peak, which ``RUSAGE_CHILDREN`` cannot give (it keeps
the largest of all children reaped so far, forked servers included).

Columns:

- C          submissions / LLM calls allowed at once (the runner's defaults are 32 / 8).
- wall       seconds from spawning the client to its exit.
- ideal      max(T + 2L, 3·N·L/C): one transcription and the two dependent calls, or
             the LLM stage at C calls at once, whichever is longer. (When all N jobs are
             submitted at once they all complete at about T, so the LLM stage cannot
             overlap transcription: T + max(2L, 3·N·L/C) is the tighter floor.)
- CPU/item   the client's user + system CPU divided by N, in milliseconds.
- sys/item   the system CPU of it (the kernel's work for the client: sockets, files).
- RSS        the client's peak resident set, MB.
- status/tx  status requests per transcript: GETs of a job that found it still queued
             or processing, plus pages of the transcript list (status sweeps). The
             GET that downloads a finished transcript is not one: every client needs it.
- late       mean and max seconds between a job completing and a GET seeing it.
- ok, llm    items that finished (per the client) and chat completions served.
- lag ms     the runner's largest event-loop lag (``loop_lag_max_ms`` in run.json).
- srv CPU    the server process's CPU: if it nears wall, the server was the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

if TYPE_CHECKING:
    from fakeapi import FakeAssemblyAI

# The fake (and pytest, which it imports) is imported only where the server is made, so
# the minimal client's process, this same file, does not pay for it.

KEY = "bench-compare-key"
MODEL = "claude-sonnet-4-6"  # the runner's default model, so both send the same body
SPEECH_MODELS = ["universal-3-5-pro", "universal-2"]  # the runner's default speech models
RECIPE = (
    "version: 1\nname: compare\ninputs: [{list: calls.csv}]\n"
    "tasks:\n"
    "  summary: {prompt: 'Summarize {{ item.name }}: {{ transcript.text[:99] }}'}\n"
    "  topics: {prompt: 'Topics of {{ item.name }}: {{ transcript.text[:99] }}'}\n"
    "  headline: {needs: [summary], prompt: 'Title {{ item.name }}: {{ tasks.summary }}'}\n"
)
REPLY = "- a point\n- another point"


@dataclass(frozen=True)
class Settings:
    items: int
    transcribe_seconds: float  # T
    latency: float  # L
    concurrency: int  # C
    poll_interval: float
    timeout: float
    runner_limits: tuple[str, ...]
    folder_root: str | None = None
    profile: str | None = None  # write the runner's cProfile here (defaults row)

    def ideal(self, llm_concurrency: int) -> float:
        """The best any client could do: max(T + 2L, 3·N·L/C)."""
        chain = self.transcribe_seconds + 2 * self.latency
        llm_stage = 3 * self.items * self.latency / llm_concurrency
        return max(chain, llm_stage)


@dataclass(frozen=True)
class Client:
    """One row: a command to run in a fresh folder, and its concurrency."""

    name: str
    command: list[str]
    submit_concurrency: int
    llm_concurrency: int


@dataclass(frozen=True)
class Measurement:
    client: Client
    exit_code: int
    wall: float
    cpu: float
    system_cpu: float
    peak_rss_mb: float
    ok_items: int | None
    loop_lag_ms: int | None
    server: dict[str, Any]
    stderr_tail: str


# --- the server ---------------------------------------------------------------------------


def make_fake(settings: Settings) -> FakeAssemblyAI:
    """Jobs complete T s after submission; every chat completion takes L s."""
    from fakeapi import FakeAssemblyAI, delay

    fake = FakeAssemblyAI(api_key=KEY, complete_after=settings.transcribe_seconds)
    fake.gateway.responder = lambda request: REPLY
    fake.faults.add("POST /v1/chat/completions", delay(settings.latency), times=None)
    return fake


def server_report(fake: FakeAssemblyAI) -> dict[str, Any]:
    """Computed in the server process when it stops; picklable."""
    jobs = list(fake.transcripts.values())
    lateness = [late for job in jobs if (late := job.notice_lateness) is not None]
    usage = resource.getrusage(resource.RUSAGE_SELF)  # a forked child starts at zero
    return {
        "transcripts": len(jobs),
        # Requests that only asked "is it done yet?": a GET that found the job still
        # queued or processing, or a page of the list (a status sweep). The GET that
        # fetches a finished transcript is the download, which every client needs.
        "status_requests": sum(job.status_requests for job in jobs) + fake.list_requests,
        "never_noticed": sum(1 for job in jobs if job.noticed_at is None),
        "late_mean": statistics.fmean(lateness) if lateness else None,
        "late_max": max(lateness) if lateness else None,
        "llm_calls": len(fake.gateway.calls),
        "requests": len(fake.history),
        "http_errors": sum(1 for r in fake.history if (r.status or 0) >= 400),
        "cpu": usage.ru_utime + usage.ru_stime,
    }


# --- running one client -------------------------------------------------------------------


def client_env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRANSCRIPT_RUNNER_TEST_MODE"}
    env.update(
        ASSEMBLYAI_API_KEY=KEY,
        ASSEMBLYAI_BASE_URL=base_url,
        ASSEMBLYAI_LLM_GATEWAY_URL=f"{base_url}/v1",
    )
    return env


def wait_with_usage(
    process: subprocess.Popen[bytes], timeout: float
) -> tuple[int, resource.struct_rusage]:
    """Reap the child with ``os.wait4`` (its own rusage); kill it after ``timeout`` s."""
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage


def prepare_folder(folder: Path, items: int) -> None:
    rows = "\n".join(f"https://media.example.com/call-{n:05d}.mp3" for n in range(items))
    (folder / "calls.csv").write_text(f"url\n{rows}\n")
    (folder / "recipe.yaml").write_text(RECIPE)


def ok_items(client: Client, folder: Path, stdout: str) -> tuple[int | None, int | None]:
    """Items that finished, and the largest event-loop lag in ms (the runner's manifest
    says both; the minimal client's JSON line only the first)."""
    if client.name.startswith("runner"):
        manifest = folder / "out" / "run.json"
        if not manifest.is_file():
            return None, None
        summary = json.loads(manifest.read_text())["summary"]
        return int(summary["items"].get("ok", 0)), summary.get("loop_lag_max_ms")
    if client.name.endswith("+ files") and not any((folder / "out").glob("*/headline.md")):
        return 0, None
    lines = stdout.strip().splitlines()
    return (int(json.loads(lines[-1])["ok"]) if lines else None), None


def measure(client: Client, settings: Settings) -> Measurement:
    """One fresh server, one fresh folder, one client run to its end."""
    from fakeapi import serve_in_process

    with tempfile.TemporaryDirectory(prefix="bench-compare-", dir=settings.folder_root) as name:
        folder = Path(name)
        prepare_folder(folder, settings.items)
        with serve_in_process(make_fake(settings), server_report) as server:
            base_url = server.base_url  # type: ignore[attr-defined]
            with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
                began = time.monotonic()
                process = subprocess.Popen(
                    client.command, cwd=folder, env=client_env(base_url), stdout=out, stderr=err
                )
                code, usage = wait_with_usage(process, settings.timeout)
                wall = time.monotonic() - began
        stdout = (folder / "stdout").read_text(errors="replace")
        stderr = (folder / "stderr").read_text(errors="replace")
        ok, lag = ok_items(client, folder, stdout)
        return Measurement(
            client=client,
            exit_code=code,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            system_cpu=usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
            ok_items=ok,
            loop_lag_ms=lag,
            server=server.result or {},
            stderr_tail="\n".join(stderr.strip().splitlines()[-5:]),
        )


def clients(settings: Settings) -> list[Client]:
    from runner.api.config import Limits

    c = settings.concurrency
    runner = [sys.executable, "-m", "runner", "run", "recipe.yaml", "--progress", "plain"]
    limits = ["--limit", f"transcriptions={c}", "--limit", f"llm={c}"]
    for extra in settings.runner_limits:
        limits += ["--limit", extra]
    minimal = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--minimal-client",
        "--concurrency",
        str(c),
        "--poll-interval",
        str(settings.poll_interval),
    ]
    defaults = Limits()
    every_item = ["--limit", f"items={settings.items}"]
    profiled = runner
    if settings.profile:
        profile = str(Path(settings.profile).resolve())
        profiled = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "runner", *runner[3:]]
    rows = [
        Client(f"runner --limit {c}", runner + limits, c, c),
        Client(f"runner --limit {c} items=N", runner + limits + every_item, c, c),
        Client("runner defaults", profiled, defaults.transcriptions, defaults.llm),
        Client("minimal asyncio", minimal, c, c),
        Client("minimal asyncio + files", [*minimal, "--write-files"], c, c),
    ]
    if sdk_installed():
        sdk = [sys.executable, str(Path(__file__).resolve()), "--sdk-client"]
        rows.append(Client(f"assemblyai SDK, {c} threads", [*sdk, "--concurrency", str(c)], c, c))
    return rows


# --- the table ----------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(m: Measurement, settings: Settings) -> list[str]:
    server, n = m.server, settings.items
    ideal = settings.ideal(m.client.llm_concurrency)
    transcripts = server.get("transcripts") or 0
    return [
        m.client.name,
        f"{m.client.submit_concurrency}/{m.client.llm_concurrency}",
        str(m.exit_code),
        f"{m.wall:.2f}",
        f"{ideal:.2f}",
        f"{m.wall / ideal:.2f}x",
        f"{1000 * m.cpu / n:.1f}",
        f"{1000 * m.system_cpu / n:.1f}",
        f"{m.peak_rss_mb:.0f}",
        f"{server['status_requests'] / transcripts:.2f}" if transcripts else "-",
        seconds(server.get("late_mean")),
        seconds(server.get("late_max")),
        "-" if m.ok_items is None else str(m.ok_items),
        "-" if m.loop_lag_ms is None else str(m.loop_lag_ms),
        str(server.get("llm_calls", "-")),
        seconds(server.get("cpu")),
    ]


HEADER = [
    "client",
    "C",
    "exit",
    "wall s",
    "ideal s",
    "wall/ideal",
    "CPU ms/item",
    "sys ms/item",
    "RSS MB",
    "status/tx",
    "late mean",
    "late max",
    "ok",
    "lag ms",
    "llm",
    "srv CPU s",
]


def print_table(rows: list[list[str]]) -> None:
    table = [HEADER, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for index, cells in enumerate(table):
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                        enumerate(zip(cells, widths, strict=True))))  # fmt: skip
        if index == 0:
            print("  ".join("-" * w for w in widths))


# --- the minimal client (runs in its own process) -----------------------------------------


class MinimalClient:
    """Submit, poll every ``poll_interval`` s, then three chat completions per item."""

    def __init__(
        self, session: Any, concurrency: int, poll_interval: float, write_files: bool
    ) -> None:
        self.session = session
        self.write_files = write_files
        self.base_url = os.environ["ASSEMBLYAI_BASE_URL"]
        self.gateway_url = os.environ["ASSEMBLYAI_LLM_GATEWAY_URL"]
        self.submit_slots = asyncio.Semaphore(concurrency)
        self.llm_slots = asyncio.Semaphore(concurrency)
        self.poll_interval = poll_interval

    async def _json(self, method: str, url: str, body: Any = None) -> Any:
        async with self.session.request(method, url, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def transcribe(self, url: str) -> tuple[str, str, bytes]:
        """The final status, the text and the body's bytes (dropped at once unless
        files are written)."""
        async with self.submit_slots:
            job = await self._json(
                "POST",
                f"{self.base_url}/v2/transcript",
                {"audio_url": url, "speech_models": SPEECH_MODELS},
            )
        body = b""
        while job["status"] not in ("completed", "error"):
            await asyncio.sleep(self.poll_interval)
            status_url = f"{self.base_url}/v2/transcript/{job['id']}"
            async with self.session.get(status_url) as response:
                response.raise_for_status()
                body = await response.read()
            job = json.loads(body)
        return str(job["status"]), str(job.get("text") or ""), body if self.write_files else b""

    async def chat(self, prompt: str) -> str:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        async with self.llm_slots:
            reply = await self._json("POST", f"{self.gateway_url}/chat/completions", body)
        return str(reply["choices"][0]["message"]["content"])

    async def item(self, name: str, url: str) -> bool:
        status, text, body = await self.transcribe(url)
        if status != "completed":
            return False
        text = text[:99]
        summary, topics = await asyncio.gather(
            self.chat(f"Summarize {name}: {text}"), self.chat(f"Topics of {name}: {text}")
        )
        headline = await self.chat(f"Title {name}: {summary}")
        if self.write_files:
            folder = Path("out") / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "transcript.json").write_bytes(body)
            for task, reply in (("summary", summary), ("topics", topics), ("headline", headline)):
                (folder / f"{task}.md").write_text(reply + "\n", encoding="utf-8")
        return True


async def minimal_main(concurrency: int, poll_interval: float, write_files: bool) -> None:
    import aiohttp

    urls = Path("calls.csv").read_text().split()[1:]
    headers = {"Authorization": os.environ["ASSEMBLYAI_API_KEY"]}
    connector = aiohttp.TCPConnector(limit=max(100, 2 * concurrency))
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        client = MinimalClient(session, concurrency, poll_interval, write_files)
        names = [url.rsplit("/", 1)[-1].removesuffix(".mp3") for url in urls]
        done = await asyncio.gather(
            *(client.item(name, url) for name, url in zip(names, urls, strict=True)),
            return_exceptions=True,
        )
    failures = [repr(d) for d in done if isinstance(d, BaseException)]
    print(json.dumps({"ok": sum(d is True for d in done), "errors": failures[:3]}))


# --- the official SDK (runs in its own process, when `assemblyai` is installed) -----------


def sdk_item(name: str, url: str, http: Any) -> bool:
    """One item as the SDK's own examples write it: transcribe (the SDK polls every
    3 s), then three chat completions, in order. The SDK's ``LLMGateway`` client
    (1.8.2) rejects the Gateway's reply (``usage.prompt_tokens`` is null in the
    recorded one, fixtures/assemblyai/llm-gateway-completion.json), so the calls go
    through ``httpx``, which the SDK itself uses."""
    import assemblyai as aai

    transcript = aai.Transcriber().transcribe(
        url, aai.TranscriptionConfig(speech_models=SPEECH_MODELS)
    )
    if transcript.status != aai.TranscriptStatus.completed:
        return False
    text = (transcript.text or "")[:99]

    def chat(prompt: str) -> str:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        response = http.post("/chat/completions", json=body)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    summary = chat(f"Summarize {name}: {text}")
    chat(f"Topics of {name}: {text}")
    chat(f"Title {name}: {summary}")
    return True


def sdk_main(concurrency: int) -> None:
    """Items in a pool of ``concurrency`` threads, the SDK's way to run many."""
    from concurrent.futures import ThreadPoolExecutor

    import assemblyai as aai
    import httpx

    aai.settings.api_key = os.environ["ASSEMBLYAI_API_KEY"]
    aai.settings.base_url = os.environ["ASSEMBLYAI_BASE_URL"]
    urls = Path("calls.csv").read_text().split()[1:]
    names = [url.rsplit("/", 1)[-1].removesuffix(".mp3") for url in urls]
    http = httpx.Client(
        base_url=os.environ["ASSEMBLYAI_LLM_GATEWAY_URL"],
        headers={"Authorization": os.environ["ASSEMBLYAI_API_KEY"]},
        limits=httpx.Limits(max_connections=concurrency),
        timeout=60,
    )
    with http, ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(sdk_item, n, u, http) for n, u in zip(names, urls, strict=True)]
        done = [f.exception() or f.result() for f in futures]
    failures = [repr(d) for d in done if isinstance(d, BaseException)]
    print(json.dumps({"ok": sum(d is True for d in done), "errors": failures[:3]}))


def sdk_installed() -> bool:
    try:
        import assemblyai  # noqa: F401
    except ImportError:
        return False
    return True


# --- command line -------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200, help="N (default 200)")
    parser.add_argument("--transcribe-seconds", type=float, default=5.0, help="T (default 5)")
    parser.add_argument("--latency", type=float, default=0.1, help="L, per chat reply")
    parser.add_argument("--concurrency", type=int, default=50, help="C (default 50)")
    parser.add_argument("--poll-interval", type=float, default=3.0, help="minimal client")
    parser.add_argument("--timeout", type=float, default=900.0, help="per client run, s")
    parser.add_argument(
        "--runner-limit",
        action="append",
        default=[],
        metavar="KIND=N",
        help="another --limit for the 'runner --limit C' row, e.g. items=1000",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only rows whose name contains this ('NAME' in single quotes: that row only)",
    )
    parser.add_argument(
        "--folder-root",
        default=None,
        metavar="DIR",
        help="make each client's working folder here, e.g. /dev/shm (default: the temp dir)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="FILE",
        help="run the 'runner defaults' row under cProfile, its stats written to FILE",
    )
    parser.add_argument("--minimal-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write-files", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sdk-client", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def _chosen(part: str, name: str) -> bool:
    """``--only`` in quotes (``"'minimal asyncio'"``) is a whole row's name; else a part."""
    if len(part) > 1 and part[0] == part[-1] == "'":
        return name == part[1:-1]
    return part in name


def main() -> None:
    args = parse_args()
    if args.minimal_client:
        asyncio.run(minimal_main(args.concurrency, args.poll_interval, args.write_files))
        return
    if args.sdk_client:
        sdk_main(args.concurrency)
        return
    settings = Settings(
        items=args.items,
        transcribe_seconds=args.transcribe_seconds,
        latency=args.latency,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        timeout=args.timeout,
        runner_limits=tuple(args.runner_limit),
        folder_root=args.folder_root,
        profile=args.profile,
    )
    print(
        f"N={settings.items} items, T={settings.transcribe_seconds:g} s, "
        f"L={settings.latency:g} s, C={settings.concurrency}, 3 LLM calls per item",
        flush=True,
    )
    rows = []
    for client in clients(settings):
        if args.only and not any(_chosen(part, client.name) for part in args.only):
            continue
        result = measure(client, settings)
        if result.exit_code != 0:
            print(f"{client.name}: exit {result.exit_code}\n{result.stderr_tail}", flush=True)
        rows.append(row(result, settings))
    print_table(rows)


if __name__ == "__main__":
    main()
