"""The recipe JSON Schema: where it lives, and how its errors read to a person.

jsonschema's messages ("Additional properties are not allowed ('modle' was
unexpected)") are written for programmers. This module validates a loaded
:class:`~runner.recipe.document.Document` and turns every error into a
:class:`~runner.diagnostics.Diagnostic` located at the offending key, worded as
what is wrong and what to do. All errors are collected, never just the first.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from runner.diagnostics import Diagnostic, Severity, suggest
from runner.recipe.document import Document, KeyPath, format_path
from runner.recipe.transcriptions import blocks

SCHEMA_FILE = "recipe.schema.json"

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys",
    "null": "nothing",
}

# YAML 1.1 reads these unquoted words as booleans; a person typing `language_code: no`
# (Norwegian) meant the text.
_YAML_BOOLEAN_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false"}

_NUMBER = re.compile(r"^\s*[-+]?[0-9]+(\.[0-9]+)?\s*$")


def schema_dir() -> Path:
    """The folder with the schemas: inside the installed package, or the repository's."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "schemas"
    if packaged.is_dir():
        return packaged
    return package.parent / "schemas"


def schema_text() -> str:
    """The recipe schema exactly as shipped (for ``transcript-runner schema``)."""
    return (schema_dir() / SCHEMA_FILE).read_text(encoding="utf-8")


@functools.cache
def recipe_schema() -> Mapping[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(recipe_schema())


def transcription_options_schema() -> Mapping[str, Any]:
    """The generated schema of AssemblyAI's transcription options."""
    defs: Mapping[str, Any] = recipe_schema()["$defs"]
    options: Mapping[str, Any] = defs["TranscriptionOptions"]
    return options


def check(doc: Document) -> list[Diagnostic]:
    """Every schema problem in ``doc``, plus warnings for deprecated transcription options."""
    found: dict[tuple[str, int, int, str], Diagnostic] = {}
    for error in _validator().iter_errors(doc.data):
        if _explained_by_typo(error):
            continue
        for diagnostic in _translate(error, doc):
            key = (diagnostic.path, diagnostic.line, diagnostic.column, diagnostic.message)
            found.setdefault(key, diagnostic)
    diagnostics = list(found.values())
    diagnostics.extend(_deprecations(doc))
    return sorted(diagnostics)


def _expected(error: ValidationError) -> Any:
    """The keyword's value in the schema (``2`` for ``maximum: 2``)."""
    value: Any = error.validator_value
    return value


def _explained_by_typo(error: ValidationError) -> bool:
    """A missing required key that sits next to its own misspelling is one mistake, not two."""
    if error.validator != "required" or not isinstance(error.instance, Mapping):
        return False
    missing = _quoted_name(str(error.message))
    return any(suggest(str(key), [missing]) for key in error.instance)


def _quoted_name(message: str) -> str:
    return message.split("'")[1] if message.count("'") >= 2 else ""


def _translate(error: ValidationError, doc: Document) -> Iterator[Diagnostic]:
    path: KeyPath = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "additionalProperties":
        yield from _unknown_keys(error, doc, path, schema)
    elif kind in ("oneOf", "anyOf"):
        yield from _one_of(error, doc, path, schema)
    elif kind == "required":
        if not _explained_by_typo(error):
            yield _required(error, doc, path, schema)
    elif "propertyNames" in error.relative_schema_path:
        yield _bad_key_name(error, doc, path)
    elif kind == "type":
        yield doc.diagnostic(path, _wrong_type(error, doc, path), key=False)
    elif kind == "enum" and "type" in schema and _other_kind_than_choices(error):
        return  # the `type` error at the same place already says what to write
    elif kind == "pattern" and error.instance == "" and schema.get("minLength", 0) > 0:
        return  # "must not be empty" says it better than the pattern
    else:
        yield doc.diagnostic(path, _other(error, path, schema), key=False)


def _unknown_keys(
    error: ValidationError, doc: Document, path: KeyPath, schema: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    allowed = list(schema.get("properties", {}))
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    what = _container_noun(path)
    for key in instance:
        if key in allowed:
            continue
        hint = suggest(key, allowed)
        if not hint:
            hint = f"; allowed here: {_short_list(allowed)}"
        yield doc.diagnostic((*path, key), f"unknown {what} {key!r}{hint}")


def _container_noun(path: KeyPath) -> str:
    if path[:1] == ("transcription",) and (
        len(path) == 1 or (len(path) == 2 and isinstance(path[1], int))
    ):
        return "transcription option"
    return "key"


def _one_of(
    error: ValidationError, doc: Document, path: KeyPath, schema: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    choice_keys: Sequence[str] | None = schema.get("x-one-of-keys")
    if choice_keys is not None:
        # Not a mapping at all: every `required` branch passes vacuously, and the
        # schema's own `type: object` reports the real mistake.
        if isinstance(error.instance, Mapping):
            yield _choice_diagnostic(doc, path, choice_keys, error.instance)
        return
    # Report the branch the person most likely meant: one whose type matches what
    # they wrote, with the fewest problems. If no branch has the right type, say
    # which types would do.
    branches = _branches(error)
    viable = {i: errs for i, errs in branches.items() if not _wrong_kind(errs, error.instance)}
    if viable:
        chosen = min(viable.values(), key=len)
        for sub in chosen:
            yield from _translate(sub, doc)
        return
    custom = schema.get("x-message")
    if isinstance(custom, str):
        yield doc.diagnostic(path, custom, key=False)
        return
    types = {t for errs in branches.values() for t in _branch_types(errs)}
    if not types:
        yield doc.diagnostic(path, f"{_shown(error.instance)} is not allowed here", key=False)
        return
    wanted = _or_words(sorted(types, key=lambda t: (t == "null", t)))
    message = f"expected {wanted}, got {_describe(error.instance)}"
    yield doc.diagnostic(path, message + _quoting_hint(doc, path, wanted), key=False)


def _choice_diagnostic(
    doc: Document, path: KeyPath, choice_keys: Sequence[str], instance: Mapping[str, Any]
) -> Diagnostic:
    present = [k for k in choice_keys if k in instance]
    if not present:
        return doc.diagnostic(path, f"{format_noun(path)} needs one of {_or_list(choice_keys)}")
    # Point at the one written last: the person most likely added it to the other.
    last = max(present, key=lambda k: _position(doc, (*path, k)))
    return doc.diagnostic(
        (*path, last), f"{format_noun(path)} has {_and_list(present)}; keep only one of them"
    )


def _position(doc: Document, path: KeyPath) -> tuple[int, int]:
    where = doc.mark(path)
    return where.line, where.column


def _branches(error: ValidationError) -> dict[int, list[ValidationError]]:
    grouped: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        index = sub.relative_schema_path[0] if sub.relative_schema_path else 0
        grouped.setdefault(int(index), []).append(sub)
    return grouped


def _wrong_kind(errors: Sequence[ValidationError], instance: Any) -> bool:
    """True when a branch failed because the value is of another kind altogether."""
    for sub in errors:
        if sub.relative_path:
            continue
        if sub.validator == "type":
            return True
        if sub.validator in ("enum", "const"):
            allowed = _expected(sub) if sub.validator == "enum" else [_expected(sub)]
            if not any(_json_type(a) == _json_type(instance) for a in allowed):
                return True
        if sub.validator in ("oneOf", "anyOf") and all(
            _wrong_kind(errs, instance) for errs in _branches(sub).values()
        ):
            return True
    return False


def _branch_types(errors: Sequence[ValidationError]) -> set[str]:
    types: set[str] = set()
    for sub in errors:
        if sub.relative_path:
            continue
        if sub.validator == "type":
            value = _expected(sub)
            types.update([value] if isinstance(value, str) else value)
        elif sub.validator == "enum":
            types.update(_json_type(a) for a in _expected(sub))
        elif sub.validator == "const":
            types.add(_json_type(_expected(sub)))
        elif sub.validator in ("oneOf", "anyOf"):
            for errs in _branches(sub).values():
                types |= _branch_types(errs)
    return types


def _other_kind_than_choices(error: ValidationError) -> bool:
    choices: Any = error.validator_value
    return _json_type(error.instance) not in {_json_type(c) for c in choices}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _required(
    error: ValidationError, doc: Document, path: KeyPath, schema: Mapping[str, Any]
) -> Diagnostic:
    missing = _quoted_name(str(error.message))
    prop = schema.get("properties", {}).get(missing, {})
    example = _example(prop)
    hint = f", e.g. `{missing}: {example}`" if example else ""
    message = f"{format_noun(path)} is missing the required key {missing!r}{hint}"
    return doc.diagnostic(path, message)


def format_noun(path: KeyPath) -> str:
    if len(path) == 2 and path[0] == "tasks":
        return f"task {path[1]!r}"
    if len(path) == 2 and path[0] == "inputs":
        return f"input #{int(path[1]) + 1}"
    if not path:
        return "the recipe"
    return "this mapping"


def _bad_key_name(error: ValidationError, doc: Document, path: KeyPath) -> Diagnostic:
    name = str(error.instance)
    noun = {"tasks": "task name", "vars": "variable name"}.get(str(path[-1]) if path else "", "key")
    return doc.diagnostic(
        (*path, name),
        f"{noun} {name!r} may use only letters, digits and '_' and must not start with a digit "
        "(templates refer to it by this name)",
    )


def _wrong_type(error: ValidationError, doc: Document, path: KeyPath) -> str:
    misplaced = _misplaced_option(path)
    if misplaced is not None:
        return misplaced
    expected = _expected(error)
    names = [expected] if isinstance(expected, str) else list(expected)
    message = f"expected {_or_words(names)}, got {_describe(error.instance)}"
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    return message + _type_hint(doc, path, names, error.instance, schema)


def _misplaced_option(path: KeyPath) -> str | None:
    """``tasks: {max_tokens: 300}``: a task's option written one level too far left, so
    it reads as a task named after the option. Say so, rather than what a task is."""
    if len(path) != 2 or path[0] not in ("tasks", "inputs") or not isinstance(path[1], str):
        return None
    options = recipe_schema()["$defs"]["task"]["properties"]
    if path[0] != "tasks" or path[1] not in options:
        return None
    return (
        f"'{path[1]}' is a task's option, but it is written directly under `tasks:`, where "
        "each key names a task; indent it under the task it belongs to, level with that "
        "task's `prompt`"
    )


def _type_hint(
    doc: Document, path: KeyPath, names: Sequence[str], value: Any, schema: Mapping[str, Any]
) -> str:
    """What to write instead, for the usual ways a value ends up of the wrong kind."""
    scalar = doc.scalars.get(path)
    key = path[-1] if path and isinstance(path[-1], str) else None
    # (a value that may be text or a mapping is most often meant as text)
    nested = ("object" in names or "array" in names) and "string" not in names
    if value is None:
        # `key:` with nothing after it; often the lines below are not indented.
        if nested:
            return "; write its entries on the lines below it, indented under the key"
        return f"; write the value after '{key}:'" if key else "; write a value here"
    if "array" in names:
        if isinstance(value, Mapping):
            return "; start each entry of the list with '- '"
        return f"; write a list, e.g. [{scalar.raw if scalar else '...'}]"
    if isinstance(value, str) and {"integer", "number"} & set(names) and _NUMBER.match(value):
        return "; remove the quotes around the number"
    quoting = _quoting_hint(doc, path, _or_words(names))
    if quoting:
        return quoting
    example = _example(schema)
    if example and key:
        return f"; e.g. `{key}: {example}`"
    if "object" in names:
        return "; write its keys on the lines below it, indented under the key"
    return ""


def _or_words(types: Sequence[str]) -> str:
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def type_words(expected: str | Sequence[str]) -> str:
    """A JSON Schema ``type`` in plain words: ``["string", "null"]`` → "text or nothing"."""
    return _or_words([expected] if isinstance(expected, str) else list(expected))


def describe(value: Any) -> str:
    """A value as a person would name it: "the text 'ten'", "a list", "nothing"."""
    return _describe(value)


def _quoting_hint(doc: Document, path: KeyPath, wanted: str) -> str:
    """Advice for the classic YAML trap: an unquoted word that YAML read as a bool or number."""
    scalar = doc.scalars.get(path)
    if scalar is None or scalar.style is not None or _TYPE_WORDS["string"] not in wanted:
        return ""
    if scalar.raw.lower() in _YAML_BOOLEAN_WORDS:
        return f"; YAML reads {scalar.raw} as true/false: write it in quotes, '{scalar.raw}'"
    return f"; write it in quotes: '{scalar.raw}'"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _other(error: ValidationError, path: KeyPath, schema: Mapping[str, Any]) -> str:
    kind = error.validator
    value = error.instance
    if kind in ("minLength", "minItems", "minProperties") and not value:
        # Checked before x-message, which explains the format of a non-empty value.
        return "must not be empty" if kind == "minLength" else _EMPTY_COLLECTION
    custom = schema.get("x-message")
    if isinstance(custom, str):
        return custom
    if kind == "enum":
        choices = [str(c) for c in _expected(error)]
        hint = suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{_shown(value)} is not allowed here; use one of {_short_list(choices)}{hint}"
    if kind == "const":
        if path == ("version",):
            return _version_message(value)
        return f"must be {_expected(error)!r}"
    if kind == "pattern":
        return _pattern_message(value, schema)
    if kind in ("minItems", "minProperties"):
        return _EMPTY_COLLECTION
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"is too long (at most {_expected(error)} characters)"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{value} is too small; the minimum is {_expected(error)}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{value} is too large; the maximum is {_expected(error)}"
    if kind == "uniqueItems":
        return "lists the same value more than once; remove the repeat"
    return str(error.message)


_EMPTY_COLLECTION = "must not be empty; add at least one entry"


def _shown(value: Any) -> str:
    """A value quoted as written when it is short text or a number, else described."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _describe(value)


def _version_message(value: Any) -> str:
    if isinstance(value, str) and value.strip() in ("1", "1.0"):
        return "the version is the number 1, not text: write `version: 1` without quotes"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"unsupported recipe version {value}; this transcript-runner reads version 1"
    return f"expected the number 1 (write `version: 1`), got {_describe(value)}"


# The pattern of task, variable and `needs` names, which templates use as identifiers.
_IDENTIFIER = "^[A-Za-z_][A-Za-z0-9_]*$"


def _pattern_message(value: Any, schema: Mapping[str, Any]) -> str:
    if schema.get("pattern") == _IDENTIFIER:
        return (
            f"{_shown(value)} is not a valid name: use only letters, digits and '_', "
            "not starting with a digit"
        )
    title = str(schema.get("title", "value")).lower()
    explanation = _first_sentence(str(schema.get("description", "")))
    if not explanation:
        explanation = f"it must match the pattern {schema.get('pattern')}"
    return f"{_shown(value)} is not a valid {title}: {explanation}"


def _deprecations(doc: Document) -> Iterator[Diagnostic]:
    properties: Mapping[str, Any] = transcription_options_schema().get("properties", {})
    for path, options in blocks(doc.data):
        yield from _deprecated_options(doc, path, options, properties)


def _deprecated_options(
    doc: Document, path: KeyPath, options: Mapping[str, Any], properties: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    for key in options:
        spec = properties.get(key, {})
        if spec.get("deprecated") and not spec.get("x-removed"):  # removed: an error elsewhere
            replacement = spec.get("x-replacement") or "see AssemblyAI's documentation"
            where = doc.mark((*path, key))
            yield Diagnostic(
                doc.file,
                where.line,
                where.column,
                format_path((*path, key)),
                f"{key!r} is deprecated by AssemblyAI. {replacement}",
                Severity.WARNING,
            )


def _example(prop: Mapping[str, Any]) -> str:
    """The schema's first example on one line (valid YAML), or "" when it is too long."""
    reference = prop.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        prop = recipe_schema()["$defs"].get(reference.removeprefix("#/$defs/"), {})
    examples = prop.get("examples")
    if not examples:
        return ""
    first = _one_line(examples[0])
    rendered = first if isinstance(first, str) else json.dumps(first, ensure_ascii=False)
    return rendered if len(rendered) <= 80 else ""


def _one_line(value: Any) -> Any:
    # Examples are written for the documentation, with line breaks in prompts; a
    # message is one line, and the breaks do not matter to the example's point.
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, Mapping):
        return {k: _one_line(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_line(v) for v in value]
    return value


def _first_sentence(text: str) -> str:
    head, _, _ = text.partition(". ")
    return head.rstrip(".") + "." if head else ""


def _short_list(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _and_list(items: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


def _or_list(items: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
