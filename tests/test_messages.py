"""The newcomer's messages: a failure names its cause and what to check, and the
summary's figures agree with what the run did and said."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli

URL_RECIPE = """\
version: 1
name: net
inputs:
  - url: https://example.com/a.mp3
  - url: https://example.com/b.mp3
tasks:
  subtitles: {export: srt}
"""


def _run_against(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-key")
    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", base_url)
    (tmp_path / "net.yaml").write_text(URL_RECIPE)
    code, _, err = run_cli("run", "net.yaml", "--progress", "plain")
    return code, err


def test_a_run_without_network_names_the_failed_dns_lookup_and_counts_its_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    looked_up: list[Any] = []

    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        looked_up.append(args)
        raise AssertionError("a .invalid name was asked of the system's resolver")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    code, err = _run_against("http://nonexistent.invalid", tmp_path, monkeypatch, run_cli)
    assert code == 1, err
    assert not looked_up  # RFC 6761: never asked of a DNS server, so no network touched
    failures = re.findall(r"failed after (\d+) retries[^:]*: DNS lookup failed for (\S+)", err)
    assert [host for _, host in failures] == ["nonexistent.invalid"] * 2, err
    assert "check this machine's network connection and DNS" in err
    assert "ASSEMBLYAI_BASE_URL" in err
    made = sum(int(n) for n, _ in failures)
    assert made > 0
    assert f"retries: {made} (transcriptions {made})" in err


def test_a_refused_connection_says_nothing_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err = _run_against(f"http://127.0.0.1:{port}", tmp_path, monkeypatch, run_cli)
    assert code == 1, err
    assert f"connection refused by 127.0.0.1:{port}: nothing listens there" in err


REPO = Path(__file__).resolve().parent.parent


def test_the_summary_counts_the_retries_sent_to_an_llm_server_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    with socket.socket() as probe:  # nothing listens: every call is retried, then fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shutil.copy(REPO / "recipes" / "transcripts" / "wildfires.json", tmp_path / "w.json")
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\ninputs:\n  - transcript_file: w.json\n"
        "tasks:\n  summary:\n    model: m\n    prompt: 'Summarize: {{ transcript.text }}'\n"
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        "run", "s.yaml", "--llm-url", f"http://127.0.0.1:{port}/v1", "--progress", "plain"
    )
    assert code == 1, err
    (made,) = re.findall(r"failed after (\d+) retries", err)
    assert int(made) > 0
    assert f"retries: {made} (llm {made})" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope.yaml"], "error: nope.yaml: no such recipe file or folder\n"),
        (["run", "nope.yaml"], "error: nope.yaml: no such recipe file or folder\n"),
        (["plan", "nope.yaml"], "error: nope.yaml: no such recipe file or folder\n"),
        (["render", "nope.yaml"], "error: nope.yaml: no such recipe file\n"),
        (["report", "shard-1/run.json"], "error: shard-1/run.json: no such manifest\n"),
        (["merge", "shard-1/run.json"], "error: shard-1/run.json: no such manifest\n"),
        (
            ["run", "--prices", "nope.yaml", "r.yaml"],
            "error: --prices nope.yaml: no such price table\n",
        ),
    ],
)
def test_every_command_reports_a_missing_file_the_same_way(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: RunCli,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text(
        (REPO / "recipes" / "transcripts" / "wildfires.json").read_text()
    )
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{transcript_file: t.json}]\ntasks:\n  s: {export: srt}\n"
    )
    code, _, err = run_cli(*args)
    assert code == 2
    assert err.endswith(message), err
    assert "Errno" not in err


def test_render_of_a_recipe_of_exports_says_there_is_nothing_to_render(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run_cli("render", "recipes/exports.yaml")
    assert code == 0
    assert out.startswith("recipes/exports.yaml: nothing to render: every task (subtitles,")
    assert "is an export" in out


def test_dry_run_counts_tasks_as_the_run_does(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run_cli("run", "--dry-run", "recipes/first-run.yaml")
    assert code == 0
    # (after the forecast's lines, which open the dry run as they open `plan`)
    assert "recipes/first-run.yaml: 1 item(s) × 5 task(s) (2 asking a model, 3 exports)" in (
        out.splitlines()
    )
