"""Check recipes without touching the network: syntax, schema, references, templates.

"Collect, then report": every problem in a file is found in one pass and reported
sorted by line, so a person fixes them all at once. Stages that need a sound
recipe (templates need tasks to exist) run only when the earlier stages passed:

1. the located YAML loader and the JSON Schema (``runner.recipe``);
2. the rules between tasks and their options (:mod:`.tasks`);
3. a dry run of the pipeline on stand-in data (:mod:`.dry_run`): the inputs expand
   into items, and every template renders against a sample transcript; the checks'
   texts render and their reference files exist for every item (:mod:`.graded`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.checks.dry_run import check_inputs, check_templates
from runner.checks.graded import check_texts
from runner.checks.models import check_region
from runner.checks.references import check_references
from runner.checks.resources import check_resources
from runner.checks.tasks import check_tasks
from runner.diagnostics import Diagnostic, display_path
from runner.errors import DiagnosticError, RecipeInvalid, UsageError
from runner.folders import DEFAULT_OUT
from runner.prompt.templating import TemplateEngine
from runner.recipe import schema as recipe_schema
from runner.recipe.build import build
from runner.recipe.document import Document, load_file
from runner.recipe.model import Recipe

RECIPE_SUFFIXES = (".yaml", ".yml")
DEFAULT_RECIPE_DIR = "recipes"


# Gateway features LeMUR does not have, and LeMUR fields the Gateway does not have.
@dataclass
class Validation:
    """The outcome for one file: its diagnostics and, when valid, the recipe."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    recipe: Recipe | None = None
    doc: Document | None = None  # the file as loaded, to locate later checks in it

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def discover(paths: Sequence[str]) -> list[Path]:
    """Recipe files named on the command line; folders are searched for *.yaml/*.yml."""
    targets = list(paths) or [DEFAULT_RECIPE_DIR]
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found.extend(_recipes_below(path))
        elif path.is_file():
            found.append(path)
        elif not paths:
            raise UsageError(
                f"no recipes given and no {DEFAULT_RECIPE_DIR}/ folder here; "
                "name recipe files or folders: transcript-runner validate path/to/recipe.yaml"
            )
        else:
            raise UsageError(f"{target}: no such recipe file or folder")
    return found


def _recipes_below(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        # Skip hidden folders and outputs the runner wrote beside the recipes.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != DEFAULT_OUT.name)
        found.extend(Path(root) / f for f in sorted(files) if f.endswith(RECIPE_SUFFIXES))
    return found


def load_recipes(
    paths: Sequence[str],
    region: str | None = None,
    because: str = "",
    variables: Mapping[str, Any] | None = None,
    *,
    load_resources: bool = False,
) -> list[Recipe]:
    """Every recipe named (files or folders), validated; :class:`RecipeInvalid` lists
    every error of every file, so one bad recipe never hides another's problems.

    With ``region``, what that region does not offer is an error too, located as
    ``validate --region`` locates it (``because``: what chose the region, if not the
    command line). ``variables``: the command line's vars, over every recipe's. With
    ``load_resources`` (``run``), what a task needs after its request is loaded now,
    before anything is sent (:mod:`.resources`)."""
    recipes: list[Recipe] = []
    problems: list[Diagnostic] = []
    for path in discover(paths):
        result = validate_file(path, variables)
        problems.extend(d for d in result.diagnostics if d.is_error)
        if result.recipe is not None and result.doc is not None:
            problems.extend(check_region(result.doc, result.recipe, region, because))
            if load_resources and not problems:
                problems.extend(check_resources(result.doc, result.recipe, load=True))
        if result.recipe is not None:
            recipes.append(result.recipe)
    if problems:
        raise RecipeInvalid(sorted(problems))
    return recipes


def validate_file(path: Path, variables: Mapping[str, Any] | None = None) -> Validation:
    """Every problem in one recipe file, checked with the command line's ``variables``
    (``--var``, ``--vars``) over its ``vars:``."""
    shown = display_path(path)
    result = Validation(shown)
    try:
        doc = load_file(path, shown)
    except DiagnosticError as error:
        result.diagnostics.append(error.diagnostic)
        return result
    result.diagnostics.extend(recipe_schema.check(doc))
    if not result.ok:
        return result
    recipe, file_problems = build(doc, path.resolve(), variables)
    result.diagnostics.extend(doc.diagnostic(p, m, key=False) for p, m in file_problems)
    result.diagnostics.extend(_check_recipe(doc, recipe))
    if result.ok:
        result.recipe = recipe
        result.doc = doc
    return result


def load_recipe(path: Path, variables: Mapping[str, Any] | None = None) -> Recipe:
    """A valid recipe, or :class:`RecipeInvalid` with every problem in it."""
    result = validate_file(path, variables)
    if result.recipe is None:
        raise RecipeInvalid([d for d in result.diagnostics if d.is_error])
    return result.recipe


def _check_recipe(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    found += check_tasks(doc, recipe)
    engine = TemplateEngine(recipe.base_dir)
    found += check_inputs(doc, recipe, engine)
    if not any(d.is_error for d in found):
        found += check_templates(doc, recipe, engine)
        found += check_texts(doc, recipe, engine)
        found += check_references(doc, recipe, engine)
    return found
