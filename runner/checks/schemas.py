"""JSON Schemas written in a recipe (``json_schema``, tools' ``parameters``) that are
not valid schemas, said in the recipe's words."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from runner.diagnostics import Diagnostic, suggest
from runner.recipe import schema as recipe_schema
from runner.recipe.document import Document, KeyPath


def check_json_schemas(doc: Document) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for name, spec in doc.data["tasks"].items():
        candidates: list[tuple[KeyPath, Any]] = []
        if "json_schema" in spec:
            candidates.append((("tasks", name, "json_schema"), spec["json_schema"]))
        # A fallback's own schema finishes its replies: as much a schema as the task's.
        for index, fallback in enumerate(spec.get("fallbacks") or ()):
            if "json_schema" in fallback:
                where: KeyPath = ("tasks", name, "fallbacks", index, "json_schema")
                candidates.append((where, fallback["json_schema"]))
        for index, tool in enumerate(spec.get("tools", [])):
            parameters = tool.get("function", {}).get("parameters")
            if parameters is not None:
                candidates.append(
                    (("tasks", name, "tools", index, "function", "parameters"), parameters)
                )
        for key_path, value in candidates:
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as error:
                inner, message = _schema_problem(error)
                found.append(
                    doc.diagnostic(
                        (*key_path, *inner), f"not a valid JSON Schema: {message}", key=False
                    )
                )
    return found


def _schema_problem(error: SchemaError) -> tuple[KeyPath, str]:
    """Where inside a json_schema the problem is, and what to write instead.

    The metaschema's own wording ("'objekt' is not valid under any of the given
    schemas") hides the list of allowed values in its sub-errors; find it.
    """
    path: KeyPath = tuple(error.absolute_path)
    keyword = next((p for p in reversed(path) if isinstance(p, str)), "value")
    choice = _enum_error(error)
    if choice is not None:
        choices: Any = choice.validator_value
        allowed = [str(a) for a in choices]
        value = str(choice.instance)
        inner = (*path, *choice.relative_path)
        return inner, (
            f"{value!r} is not a valid {keyword!r}; use one of {', '.join(allowed)}"
            + suggest(value, allowed)
        )
    if error.validator == "type":
        expected: Any = error.validator_value
        wanted = recipe_schema.type_words(expected)
        return path, (f"{keyword!r} must be {wanted}, not {recipe_schema.describe(error.instance)}")
    return path, error.message


def _enum_error(error: SchemaError | ValidationError) -> SchemaError | ValidationError | None:
    """The innermost "one of these values" error below ``error``, for a text value."""
    if error.validator == "enum" and isinstance(error.instance, str):
        return error
    best: SchemaError | ValidationError | None = None
    for sub in error.context or []:
        found = _enum_error(sub)
        if found is not None and (best is None or len(found.path) > len(best.path)):
            best = found
    return best
