"""The two versions of the recipes ``review`` compares: a commit's, read with ``git``
into a folder of its own (the recipe and everything it includes: prompt files,
partials, schemas, lists, saved transcripts), and the working tree's."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.api.hosts import rest_region
from runner.checks import load_recipes
from runner.diagnostics import Diagnostic
from runner.errors import RecipeInvalid, UsageError
from runner.recipe.model import Recipe


@dataclass(frozen=True)
class Side:
    """One version of the recipes: where it comes from, as the user named it."""

    label: str  # "base (origin/main)", "head (working tree)"
    recipes: list[Recipe]


def repository_root() -> Path:
    """The top folder of the git repository around the working folder."""
    found = _git(Path.cwd(), "rev-parse", "--show-toplevel")
    if found is None:
        raise UsageError(
            "not inside a git repository: review compares the recipes with their version "
            "at --base REF; run it in the repository that holds them"
        )
    return Path(found.decode().strip()).resolve()


def recipes_at(
    root: Path,
    ref: str,
    paths: Sequence[str],
    into: Path,
    variables: Mapping[str, Any] | None = None,
    option: str = "--base",
) -> Side:
    """The recipes named by ``paths`` as they were at ``ref``, validated (exit 3 names
    the line, as ``REF:path``)."""
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit is None:
        raise UsageError(
            f"{option} {ref}: no such commit in this repository; name a branch, tag or "
            "commit, e.g. --base origin/main or --base HEAD~1"
        )
    archive = _git(root, "archive", "--format=tar", commit.decode().strip())
    if archive is None:
        raise UsageError(f"{option} {ref}: git could not read that commit")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    relative = [_inside(root, path) for path in paths]
    missing = [path for path, rel in zip(paths, relative, strict=True) if not (into / rel).exists()]
    if missing:
        raise UsageError(f"{', '.join(missing)}: not in {ref}; review the recipes both sides hold")
    try:
        named = [str(into / rel) for rel in relative]
        recipes = load_recipes(named, *rest_region(None, os.environ), variables)
    except RecipeInvalid as invalid:
        raise RecipeInvalid([_at_ref(d, into, ref) for d in invalid.diagnostics]) from None
    return Side(f"base ({ref})" if option == "--base" else f"head ({ref})", recipes)


def working_recipes(paths: Sequence[str], variables: Mapping[str, Any] | None = None) -> Side:
    """The recipes as they are in the working tree."""
    recipes = load_recipes(paths, *rest_region(None, os.environ), variables)
    return Side("head (working tree)", recipes)


def _inside(root: Path, path: str) -> Path:
    try:
        return Path(path).resolve().relative_to(root)
    except ValueError:
        raise UsageError(f"{path}: outside the git repository at {root}") from None


def _at_ref(diagnostic: Diagnostic, folder: Path, ref: str) -> Diagnostic:
    """A problem in the extracted copy, named as ``REF:path`` (the copy is temporary)."""
    prefix = str(folder.resolve())
    if diagnostic.file.startswith(prefix):
        return replace(diagnostic, file=f"{ref}:{diagnostic.file[len(prefix) :].lstrip(os.sep)}")
    return diagnostic


def _git(folder: Path, *args: str) -> bytes | None:
    """What ``git ARGS`` prints in ``folder``; None when it fails or git is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, check=False, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
