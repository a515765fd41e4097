"""Git repositories for the tests of `review`, the action and the help examples: one
way to run git (no user configuration needed) and one set of saved transcripts that
each send their own requests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

WILDFIRES = Path(__file__).resolve().parent.parent / "recipes" / "transcripts" / "wildfires.json"


def git(folder: Path, *args: str) -> str:
    """``git ARGS`` in ``folder``, as a committer with no configuration of their own."""
    done = subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def commit_all(folder: Path, message: str) -> None:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)


def saved_transcripts(folder: Path, names: Iterable[str]) -> None:
    """``transcripts/NAME.json`` for each name: the wildfires interview, each with its
    own id and text, so no two items send the same request."""
    (folder / "transcripts").mkdir(parents=True, exist_ok=True)
    saved = json.loads(WILDFIRES.read_text(encoding="utf-8"))
    for name in names:
        own = {**saved, "id": f"t-{name}", "text": f"{name} call. {saved['text']}"}
        (folder / "transcripts" / f"{name}.json").write_text(json.dumps(own), encoding="utf-8")
