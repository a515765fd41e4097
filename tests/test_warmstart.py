"""The warm `transcript-runner` (tests/warmstart.py) is the installed one, started earlier.

The workflow's and the action's tests run their bash lines on it; here the same lines
run on both, and what a shell sees (exit code, standard output, standard error, files
written in the folder it was started in) is the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docblocks import ROOT
from warmstart import ENTRY, Warm, WarmProcess

pytestmark = pytest.mark.slow  # a cold start of the installed script, a real subprocess

BROKEN = "version: 1\nname: broken\ninputs: [{url: 'https://example.com/a.mp3'}]\ntasks:\n"
LINES = (
    # A folder relative to where it started, the environment's say on the format (GitHub
    # annotations), an exit code of 3, and both streams.
    'transcript-runner validate recipes/ more/ || echo "exit $?"',
    # What the shell gets back from click's own usage error.
    'transcript-runner run --no-such-option || echo "exit $?"',
    # A file written where the process stood, from arguments after a pipe.
    "transcript-runner schema | head -c 40 > schema-head.txt; transcript-runner --version",
)


def cold_bin(tmp_path: Path) -> Path:
    """The installed script's folder, or a stand-in that runs the same entry point."""
    here = Path(sys.executable).parent
    if (here / "transcript-runner").is_file():
        return here
    folder = tmp_path / "bin"
    folder.mkdir()
    shim = folder / "transcript-runner"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runner "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return folder


def play(line: str, folder: Path, path: Path) -> tuple[int, str, str, str]:
    shutil.copytree(ROOT / "recipes", folder / "recipes")
    (folder / "more").mkdir()
    (folder / "more" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
    env["GITHUB_ACTIONS"] = "true"
    done = subprocess.run(
        ["bash", "-e", "-c", line],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    head = folder / "schema-head.txt"
    return done.returncode, done.stdout, done.stderr, head.read_text() if head.exists() else ""


@pytest.mark.parametrize("line", LINES)
def test_a_line_gives_the_shell_what_the_installed_script_gives(
    line: str, tmp_path: Path, warm: Warm
) -> None:
    cold = play(line, tmp_path / "cold", cold_bin(tmp_path))
    hot = play(line, tmp_path / "warm", warm.bin)
    assert hot == cold
    assert cold[1] or cold[2]  # the line said something to compare


def test_the_warm_server_calls_what_the_installed_script_calls() -> None:
    script = Path(sys.executable).parent / "transcript-runner"
    if not script.is_file():
        pytest.skip("transcript-runner is not installed as a script here")
    module, _, function = ENTRY.partition(":")
    assert f"from {module} import {function}" in script.read_text(encoding="utf-8")


# A command that says it is ready, then waits until it is signalled: ``python -m
# timeit`` runs the setup, then the statement. The setup leaves SIGINT to its default
# action, as for SIGTERM (timeit would catch a KeyboardInterrupt and return 1).
SLEEPER = [
    "-m",
    "timeit",
    "-n",
    "1",
    "-r",
    "1",
    "-s",
    "import signal; signal.signal(signal.SIGINT, signal.SIG_DFL); open('ready', 'w').close()",
    "import time; time.sleep(60)",
]


@pytest.mark.parametrize("sent", ["SIGTERM", "SIGINT"])
def test_a_warm_process_signals_its_command_and_dies_as_it_did(
    warm: Warm, tmp_path: Path, sent: str
) -> None:
    """``send_signal`` reaches the forked command, not the client, and the client ends as
    the command did: killed by the same signal, adding nothing of its own (before, a
    SIGINT raised a KeyboardInterrupt in the client, with a traceback)."""
    import signal
    import time

    process = WarmProcess(
        warm,
        SLEEPER,
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    command = process.command_pid
    assert command is not None
    assert command != process.pid
    deadline = time.monotonic() + 60  # a guard against a wedged command, not a wait
    while not (tmp_path / "ready").exists():  # readiness: the setup has run
        assert process.poll() is None, process.communicate()
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the command never got ready: {process.communicate()}")
        time.sleep(0.01)
    process.send_signal(getattr(signal, sent))
    out, err = process.communicate(timeout=60)  # a guard against a hang, not a wait
    assert process.returncode == -getattr(signal, sent)
    assert (out, err) == ("", "")
    process.send_signal(signal.SIGTERM)  # ended: nothing to signal, and no error
