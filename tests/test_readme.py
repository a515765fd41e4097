"""The README's commands, as a newcomer types them after installing: each
``transcript-runner`` command of its shell blocks runs against the fake (the install
steps themselves need the network and are what CI's fresh clone runs)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def readme_commands() -> list[tuple[dict[str, str], list[str]]]:
    """(environment, arguments) of each ``transcript-runner`` step of a bash block."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            for step in line.split("#", 1)[0].split("&&"):
                words = shlex.split(step)
                env = {}
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    name, _, value = words.pop(0).partition("=")
                    env[name] = value
                if words and words[0].endswith("transcript-runner"):
                    found.append((env, words[1:]))
    return found


def test_the_readme_has_its_commands() -> None:
    assert [args[:2] for _, args in readme_commands()] == [
        ["run", "recipes/first-run.yaml"],
        ["validate"],
        ["run", "recipes/summaries.yaml"],
    ]


def test_every_readme_command_runs(
    served: Path,
    fake: FakeAssemblyAI,
    api_key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(REPO / "recipes", served / "recipes")
    monkeypatch.delenv("CI", raising=False)  # a person trying the README
    for env, args in readme_commands():
        with monkeypatch.context() as scoped:
            if "ASSEMBLYAI_API_KEY" in env:
                scoped.setenv("ASSEMBLYAI_API_KEY", api_key)  # "your-key": the fake's
            else:
                scoped.delenv("ASSEMBLYAI_API_KEY", raising=False)
            code, out, err = run_cli(*args)
        assert code == 0, f"{args}\n{out}{err}"
        assert "Traceback" not in out + err
    assert (served / "out" / "first-run" / "team-sync" / "subtitles.srt").is_file()
    assert (served / "out" / "summaries" / "wildfires" / "bullets.md").is_file()
