"""Generate ``schemas/transcription.schema.json`` from AssemblyAI's own OpenAPI spec.

Why this exists: the ``transcription:`` block of a recipe is passed almost verbatim to
AssemblyAI's ``POST /v2/transcript``. Rather than keep a hand-typed copy of the ~45 options
(which drifts the moment AssemblyAI adds, renames or deprecates one), we derive the JSON
Schema mechanically from ``components.schemas.TranscriptOptionalParams`` in AssemblyAI's
published OpenAPI document. Editors use the result for completion and hover help, and the
runner uses it to catch misspelled or mistyped options before any audio is uploaded.

What the conversion does (OpenAPI 3.1 schema objects are *almost* JSON Schema 2020-12):

* ``$ref: "#/components/schemas/X"`` becomes ``"#/$defs/X"`` and X is copied (transitively)
  into ``$defs``, so the output is self-contained.
* ``x-label`` becomes ``title``; every other vendor key (``x-fern-*``, ``x-aai-enum``,
  ``x-ts-type``, ...) is dropped. ``example`` becomes ``examples: [...]``; ``nullable: true``
  adds ``"null"`` to ``type``. OpenAPI-only ``format`` values are dropped and ``url`` is
  spelled ``uri``.
* The top-level ``required: [speech_models]`` is removed: the runner supplies a default.
* Deprecated options get an ``x-replacement`` hint for recipe editors (see the tables below),
  and options AssemblyAI removed from the spec but that old recipes still use are added back
  as deprecated, so validation can say "use X instead" rather than "unknown key".

The spec is read as YAML 1.2 booleans (only true/false), because PyYAML's YAML 1.1 rules
would turn the Norwegian language code ``no`` into ``False``.

Usage::

    python scripts/generate_transcription_schema.py            # (re)write the schema
    python scripts/generate_transcription_schema.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

Schema = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO_ROOT / "vendor" / "assemblyai" / "openapi.yml"
DEFAULT_OUT = REPO_ROOT / "schemas" / "transcription.schema.json"

ROOT_COMPONENT = "TranscriptOptionalParams"
COMPONENT_REF_PREFIX = "#/components/schemas/"
DEFS_REF_PREFIX = "#/$defs/"

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://transcript-runner.dev/schemas/transcription.schema.json"
SCHEMA_TITLE = "Transcription settings"
SCHEMA_DESCRIPTION = (
    "The `transcription:` block of a recipe: the options sent to AssemblyAI when the audio "
    "is transcribed. Every option is optional; leave one out to get AssemblyAI's default. "
    "You never set the audio file here (the runner takes it from the recipe inputs), and if "
    "you leave out `speech_models` the runner picks sensible models for you. Options marked "
    "as deprecated are outdated: each one says what to use instead."
)
SCHEMA_EXAMPLES: list[Schema] = [
    {"speech_models": ["universal-3-5-pro", "universal-2"], "speaker_labels": True},
]

# ---------------------------------------------------------------------------------------
# Deprecation hints for recipe editors (source of truth: the AssemblyAI API notes,
# assemblyai-api-notes.md, section 3). Every option the spec marks `deprecated: true` MUST
# have an entry here, and every entry here must be deprecated in the spec: the generator
# stops with an error otherwise, so a spec update forces someone to write the hint.
# ---------------------------------------------------------------------------------------
_USE_LLM_TASK = (
    "Add an LLM task to the recipe instead (LLM Gateway), e.g. a `summary:` task with a prompt."
)
_NO_OP = "This option no longer does anything; remove it from the recipe."
_USE_KEYTERMS = "Use `keyterms_prompt` (a list of up to 1000 terms) instead."

DEPRECATED_REPLACEMENTS: dict[str, str] = {
    # option             what a recipe editor should do instead
    "auto_chapters": _USE_LLM_TASK,
    "summarization": _USE_LLM_TASK,
    "summary_model": _USE_LLM_TASK,
    "summary_type": _USE_LLM_TASK,
    "speech_model": (
        "Use `speech_models` (a list in priority order), e.g. [universal-3-5-pro, universal-2]."
    ),
    "custom_topics": _NO_OP,
    "topics": _NO_OP,
}

# Options AssemblyAI REMOVED from the spec but which old recipes and SDKs still send. They
# are added back as deprecated so validation warns with a hint instead of "unknown key".
# The generator stops with an error if the spec ever defines one of these again.
_REMOVED_NOTE = (
    "Not in AssemblyAI's OpenAPI spec any more; added by the generator so that old recipes "
    "get a deprecation hint instead of an 'unknown option' error."
)
REMOVED_OPTIONS: dict[str, Schema] = {
    "word_boost": {
        "title": "Word boost",
        "description": (
            "Removed from AssemblyAI's API. Used to be a list of words the model should "
            "favour; newer speech models reject it."
        ),
        "type": "array",
        "items": {"type": "string"},
        "deprecated": True,
        "x-removed": True,
        "x-replacement": _USE_KEYTERMS,
        "$comment": _REMOVED_NOTE,
    },
    "boost_param": {
        "title": "Word boost strength",
        "description": (
            "Removed from AssemblyAI's API. Used to set how strongly the `word_boost` words "
            "were favoured: low, default or high."
        ),
        "type": "string",
        "enum": ["low", "default", "high"],
        "deprecated": True,
        "x-removed": True,
        "x-replacement": _USE_KEYTERMS,
        "$comment": _REMOVED_NOTE,
    },
}

# ---------------------------------------------------------------------------------------
# Keyword handling for the OpenAPI -> JSON Schema 2020-12 conversion.
# ---------------------------------------------------------------------------------------
# Keywords whose value is a map of name -> subschema.
_SCHEMA_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
# Keywords whose value is a list of subschemas.
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
# Keywords whose value is a single subschema (or a boolean schema).
_SCHEMA_KEYWORDS = frozenset(
    {
        "items",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "contains",
        "not",
        "if",
        "then",
        "else",
    }
)
# Keywords whose value is plain data, copied as is.
_DATA_KEYWORDS = frozenset(
    {
        "$comment",
        "const",
        "default",
        "deprecated",
        "description",
        "enum",
        "examples",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "pattern",
        "readOnly",
        "required",
        "title",
        "type",
        "uniqueItems",
        "writeOnly",
    }
)
# OpenAPI `format` values that JSON Schema does not define and editors would ignore anyway.
_DROPPED_FORMATS = frozenset({"float", "double", "int32", "int64", "byte", "binary"})
_RENAMED_FORMATS = {"url": "uri"}


class SpecError(Exception):
    """The spec (or the tables above) cannot be turned into the schema we promise."""


# ---------------------------------------------------------------------------------------
# Reading the spec
# ---------------------------------------------------------------------------------------
# libyaml's parser when PyYAML has it (a tenth of the pure-Python one's time on this
# 240 KB spec); the booleans below are resolved the same way on either.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Yaml12Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """SafeLoader with YAML 1.2 booleans: only true/false, never yes/no/on/off."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_spec(path: Path) -> Schema:
    """Parse the OpenAPI document at ``path``."""
    with path.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: expected a YAML mapping at the top level")
    return spec


def components_of(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``components.schemas`` of the spec."""
    try:
        schemas = spec["components"]["schemas"]
    except (KeyError, TypeError) as exc:
        raise SpecError("the spec has no components.schemas") from exc
    if not isinstance(schemas, dict):
        raise SpecError("components.schemas is not a mapping")
    return schemas


# ---------------------------------------------------------------------------------------
# Converting one schema object
# ---------------------------------------------------------------------------------------
def rewrite_ref(ref: str, where: str) -> str:
    """Point a component reference at ``$defs``; anything else is unsupported."""
    if not ref.startswith(COMPONENT_REF_PREFIX):
        raise SpecError(f"{where}: unsupported $ref {ref!r}")
    return DEFS_REF_PREFIX + ref.removeprefix(COMPONENT_REF_PREFIX)


def convert_format(value: str) -> str | None:
    """Map an OpenAPI ``format`` onto JSON Schema (``None``: drop it)."""
    if value in _DROPPED_FORMATS:
        return None
    return _RENAMED_FORMATS.get(value, value)


def convert_subschema(node: Any, where: str) -> Any:
    """Convert a subschema, which may also be a boolean schema."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a schema object, got {type(node).__name__}")
    return convert_schema(node, where)


def convert_keyword(key: str, value: Any, where: str) -> tuple[str, Any] | None:
    """Convert one keyword of a schema object; ``None`` means drop it."""
    path = f"{where}/{key}"
    if key == "$ref":
        return key, rewrite_ref(value, path)
    if key == "x-label":
        return "title", value
    if key.startswith("x-") or key == "nullable":
        return None
    if key == "example":
        return "examples", [copy.deepcopy(value)]
    if key == "format":
        converted = convert_format(value)
        return None if converted is None else (key, converted)
    if key in _SCHEMA_MAP_KEYWORDS:
        return key, {name: convert_subschema(sub, f"{path}/{name}") for name, sub in value.items()}
    if key in _SCHEMA_LIST_KEYWORDS:
        return key, [convert_subschema(sub, f"{path}/{i}") for i, sub in enumerate(value)]
    if key in _SCHEMA_KEYWORDS:
        return key, convert_subschema(value, path)
    if key in _DATA_KEYWORDS:
        return key, copy.deepcopy(value)
    raise SpecError(f"{path}: keyword {key!r} has no JSON Schema conversion; teach the script")


def apply_nullable(schema: Schema) -> Schema:
    """Express OpenAPI 3.0 ``nullable: true`` in JSON Schema 2020-12 terms."""
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    annotations = {"title", "description", "default", "deprecated", "examples", "$comment"}
    outer = {key: value for key, value in schema.items() if key in annotations}
    inner = {key: value for key, value in schema.items() if key not in annotations}
    return {**outer, "anyOf": [inner, {"type": "null"}]}


def convert_schema(node: Mapping[str, Any], where: str) -> Schema:
    """Convert one OpenAPI schema object (recursively) into JSON Schema 2020-12."""
    converted: Schema = {}
    for key, value in node.items():
        result = convert_keyword(key, value, where)
        if result is not None and result[0] not in converted:
            converted[result[0]] = result[1]
    if "x-label" in node and "title" in node:
        converted["title"] = node["title"]  # an explicit title wins over x-label
    if "deprecated" in converted:
        converted["deprecated"] = bool(converted["deprecated"])
    return apply_nullable(converted) if node.get("nullable") is True else converted


# ---------------------------------------------------------------------------------------
# Assembling the document
# ---------------------------------------------------------------------------------------
def iter_refs(node: Any) -> Iterator[str]:
    """Yield every ``$ref`` string inside ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def referenced_components(components: Mapping[str, Any], root: str) -> list[str]:
    """Names of the components ``root`` refers to, transitively (excluding ``root``)."""
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        if name not in components:
            raise SpecError(f"components.schemas.{name} is referenced but not defined")
        seen.add(name)
        pending.extend(
            ref.removeprefix(COMPONENT_REF_PREFIX)
            for ref in iter_refs(components[name])
            if ref.startswith(COMPONENT_REF_PREFIX)
        )
    return sorted(seen - {root})


def annotate_deprecations(properties: Schema) -> None:
    """Attach ``x-replacement`` to every deprecated option, checking the table is current."""
    deprecated = {name for name, sub in properties.items() if sub.get("deprecated") is True}
    missing = sorted(deprecated - DEPRECATED_REPLACEMENTS.keys())
    if missing:
        raise SpecError(
            f"the spec marks {missing} deprecated; add a hint to DEPRECATED_REPLACEMENTS"
        )
    stale = sorted(DEPRECATED_REPLACEMENTS.keys() - deprecated)
    if stale:
        raise SpecError(f"DEPRECATED_REPLACEMENTS lists {stale}, which the spec does not deprecate")
    for name in deprecated:
        properties[name]["x-replacement"] = DEPRECATED_REPLACEMENTS[name]


def add_removed_options(properties: Schema) -> None:
    """Add back options the spec removed, marked deprecated with a replacement hint."""
    clashes = sorted(properties.keys() & REMOVED_OPTIONS.keys())
    if clashes:
        raise SpecError(f"the spec defines {clashes} again; drop them from REMOVED_OPTIONS")
    for name, schema in REMOVED_OPTIONS.items():
        properties[name] = copy.deepcopy(schema)


def build_properties(root: Schema) -> Schema:
    """The recipe's options: the spec's optional params plus the removed ones."""
    properties = root.get("properties")
    if not isinstance(properties, dict):
        raise SpecError(f"{ROOT_COMPONENT} has no properties")
    if "audio_url" in properties:
        raise SpecError(f"{ROOT_COMPONENT} now defines audio_url, which the runner supplies")
    annotate_deprecations(properties)
    add_removed_options(properties)
    return properties


def spec_version(spec: Mapping[str, Any]) -> str:
    """``info.version`` of the spec, for the provenance note."""
    info = spec.get("info")
    version = info.get("version") if isinstance(info, dict) else None
    return str(version) if version is not None else "unknown"


def build_schema(spec: Mapping[str, Any]) -> Schema:
    """Build the standalone JSON Schema for a recipe's ``transcription:`` block."""
    components = components_of(spec)
    root = convert_schema(components[ROOT_COMPONENT], f"#/components/schemas/{ROOT_COMPONENT}")
    # The spec's whole-object example sets deprecated options and even values its own schema
    # rejects (summary_model: null), so it is replaced by SCHEMA_EXAMPLES below.
    for key in ("required", "examples", "title", "description"):
        root.pop(key, None)
    schema: Schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "$comment": (
            "Generated by scripts/generate_transcription_schema.py from AssemblyAI's OpenAPI "
            f"spec (info.version {spec_version(spec)}). Do not edit by hand."
        ),
        "title": SCHEMA_TITLE,
        "description": SCHEMA_DESCRIPTION,
        **root,
        "properties": build_properties(root),
        "examples": copy.deepcopy(SCHEMA_EXAMPLES),
        "$defs": {
            name: convert_schema(components[name], f"{COMPONENT_REF_PREFIX}{name}")
            for name in referenced_components(components, ROOT_COMPONENT)
        },
    }
    verify_schema(schema)
    return schema


def verify_schema(schema: Schema) -> None:
    """Refuse to emit a schema that is invalid or rejects its own examples."""
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for example in schema["examples"]:
        errors = [error.message for error in validator.iter_errors(example)]
        if errors:
            raise SpecError(f"the schema rejects its own example {example}: {errors}")


def render(schema: Schema) -> str:
    """Serialise deterministically: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC, help="AssemblyAI OpenAPI YAML to read"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON Schema file to write")
    parser.add_argument(
        "--recipe-schema",
        type=Path,
        default=RECIPE_SCHEMA,
        help="recipe schema whose $defs.TranscriptionOptions is refreshed",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if --out differs from what would be generated",
    )
    return parser.parse_args(argv)


def check_up_to_date(out: Path, expected: str) -> int:
    """Compare the committed file with freshly generated text; print a diff if stale."""
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    if current == expected:
        print(f"{out} is up to date.")
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=f"{out} (committed)",
        tofile=f"{out} (generated)",
    )
    sys.stderr.writelines(list(diff)[:60])
    print(
        f"\n{out} is out of date; run: python scripts/generate_transcription_schema.py",
        file=sys.stderr,
    )
    return 1


RECIPE_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "recipe.schema.json"


# Keys of a recipe's `transcription:` that are the runner's, not AssemblyAI's: the
# recipe schema's copy of the options accepts them; the runner takes them out before
# it sends the options.
RUNNER_OPTIONS: Schema = {
    "expect": {
        "title": "Transcription checks",
        "description": (
            "Checks on each item's transcript, such as its word error rate against a "
            "reference (`wer`). A failed check fails the item (exit code 1); its tasks "
            "still run."
        ),
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/transcription_expectation"},
        "examples": [[{"wer": {"reference": "refs/{{ item.name }}.txt", "max": 0.15}}]],
    }
}


def embed_in_recipe_schema(options: Schema, recipe_text: str) -> str:
    """The recipe schema with the transcription options copied into its ``$defs``.

    Editors resolve a relative ``$ref`` against the schema's ``$id`` (an https URL),
    so a reference to a second file would send them to the network. The recipe
    schema therefore carries the options itself: the options object becomes
    ``$defs.TranscriptionOptions`` and its own ``$defs`` move up beside it (their
    ``#/$defs/X`` references stay valid at the new root).
    """
    recipe: Schema = json.loads(recipe_text)
    defs: Schema = recipe.setdefault("$defs", {})
    embedded = {k: v for k, v in options.items() if k not in ("$schema", "$id", "$defs")}
    for name, definition in options.get("$defs", {}).items():
        if name in defs and defs[name] != definition and name != "TranscriptionOptions":
            raise SpecError(f"$defs name clash between recipe and transcription schemas: {name}")
        defs[name] = definition
    # The runner's own key beside AssemblyAI's options (never sent to AssemblyAI).
    embedded["properties"] = {**embedded.get("properties", {}), **RUNNER_OPTIONS}
    defs["TranscriptionOptions"] = embedded
    return json.dumps(recipe, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    recipe_path: Path = args.recipe_schema
    try:
        options = build_schema(load_spec(args.spec))
        expected = render(options)
        expected_recipe = embed_in_recipe_schema(options, recipe_path.read_text(encoding="utf-8"))
    except (OSError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return max(check_up_to_date(out, expected), check_up_to_date(recipe_path, expected_recipe))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(expected, encoding="utf-8", newline="\n")
    recipe_path.write_text(expected_recipe, encoding="utf-8", newline="\n")
    print(f"Wrote {out} and updated $defs.TranscriptionOptions in {recipe_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
