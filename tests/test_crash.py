"""A bug in transcript-runner is one line naming it and its crash log, and exit code 4.

The crash is asked for with TRANSCRIPT_RUNNER_TEST_CRASH, honoured in test mode only
(runner/crash.py); the rest is the real command line, in this process or in a child.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import RunCli

from runner import __version__
from runner.api.pacing import TEST_MODE_ENV
from runner.crash import TEST_CRASH_ENV
from runner.errors import EXIT_INTERNAL

ROOT = Path(__file__).resolve().parent.parent
KEY = "crash-test-key-5d1e9b"
PROVIDER_KEY = "sk-provider-secret-77aa"
LINE = re.compile(
    rf"^error: a bug in transcript-runner {re.escape(__version__)}: (?P<said>.*); its details "
    r"are in (?P<log>\S+); please report it at https://\S+ with that file\n$"
)


@pytest.fixture
def crashing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A crash whose message holds the API key and a provider's key; a fresh working
    folder and temporary folder (returned: the working folder)."""
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", PROVIDER_KEY)
    monkeypatch.setenv(TEST_CRASH_ENV, f"boom: sent {KEY}\nand {PROVIDER_KEY}")
    work, temporary = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # the stdlib's own override
    monkeypatch.chdir(work)
    return work


def test_a_crash_is_one_line_exit_4_and_a_log_without_secrets(
    crashing: Path, run_cli: RunCli
) -> None:
    (crashing / ".transcript-runner").mkdir()
    code, out, err = run_cli("run", "recipes/", "--llm-url", f"http://h/?k={KEY}")

    assert code == EXIT_INTERNAL == 4
    assert out == ""
    line = LINE.match(err)
    assert line, err
    assert line["said"] == "RuntimeError: boom: sent [REDACTED] and [REDACTED]"
    log = Path(line["log"])
    assert log.parent == Path(".transcript-runner")  # the state folder, where a user looks
    text = log.read_text()
    assert KEY not in text
    assert PROVIDER_KEY not in text
    assert f"version: {__version__}\n" in text
    assert f"python: {sys.implementation.name}".lower() in text.lower()
    assert "platform: " in text
    assert "command: transcript-runner run recipes/ --llm-url 'http://h/?k=[REDACTED]'" in text
    assert "Traceback (most recent call last):" in text
    assert text.rstrip().endswith("RuntimeError: boom: sent [REDACTED]\nand [REDACTED]")


def test_a_password_in_a_url_and_a_key_under_any_secret_name_are_not_logged(
    crashing: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_AUTH", "auth-value-9f8e7d")  # a provider's api_key_env
    monkeypatch.setenv(TEST_CRASH_ENV, "boom with auth-value-9f8e7d")
    (crashing / ".transcript-runner").mkdir()
    code, _, err = run_cli("run", "recipes/", "--llm-url", "https://me:hunter22@h/v1")
    line = LINE.match(err)
    assert code == 4, err
    assert line, err
    text = Path(line["log"]).read_text()
    assert "hunter22" not in text
    assert "auth-value-9f8e7d" not in text
    assert "--llm-url https://[REDACTED]@h/v1" in text


def test_the_log_goes_to_the_state_dir_given(crashing: Path, run_cli: RunCli) -> None:
    (crashing / "state").mkdir()
    _, _, err = run_cli("plan", "r.yaml", "--state-dir=state")
    line = LINE.match(err)
    assert line, err
    assert Path(line["log"]).parent == Path("state")


def test_without_a_state_folder_the_log_goes_to_the_temporary_folder(
    crashing: Path, run_cli: RunCli
) -> None:
    _, _, err = run_cli("validate")
    line = LINE.match(err)
    assert line, err
    log = Path(line["log"])
    assert log.parent == Path(tempfile.gettempdir())
    assert log.name.startswith("transcript-runner-crash-")
    assert log.suffix == ".log"
    assert not (crashing / ".transcript-runner").exists()  # a crash makes no folders


def test_a_log_that_cannot_be_written_is_said_in_the_same_line(
    crashing: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (crashing / "afile").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(crashing / "afile" / "tmp"))
    code, _, err = run_cli("validate")
    assert code == EXIT_INTERNAL
    assert err.count("\n") == 1
    assert "its details could not be written (" in err
    assert "afile/tmp/" in err
    assert KEY not in err


def _subprocess(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "schema"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_real_process_prints_no_traceback(crashing: Path) -> None:
    done = _subprocess({**os.environ, "TMPDIR": str(crashing)}, crashing)
    assert done.returncode == EXIT_INTERNAL
    assert LINE.match(done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_the_crash_switch_is_ignored_outside_test_mode(crashing: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != TEST_MODE_ENV}
    done = _subprocess(env, crashing)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("{")
