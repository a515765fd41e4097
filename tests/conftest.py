"""Shared fixtures: run the command line in-process and capture what it prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from runner.cli import main


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """``run_cli("validate", "recipe.yaml")`` runs ``transcript-runner`` as a user would.

    ``GITHUB_ACTIONS`` is cleared so the report format does not depend on where the
    tests run; a test that wants it sets it again with ``monkeypatch.setenv``.
    """
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before this call
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else 1, out, err)

    return run
