"""Load a YAML file into plain data plus the line and column of every key and value.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two
duplicate keys. Recipes are edited by people who do not code, so every later
message must point at a line: we compose the node tree (safe, no tags that run
code) and build the data ourselves, recording marks on the way.

Key paths are tuples such as ``("tasks", "summary", "model")`` or
``("inputs", 0, "url")`` and print as ``$.tasks.summary.model`` / ``$.inputs[0].url``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.diagnostics import Diagnostic, Severity
from runner.errors import DiagnosticError
from runner.recipe.yaml_advice import (
    LINE_BREAK,
    MAX_DEPTH,
    TOO_DEEP,
    UNQUOTED_TEMPLATE,
    reader_diagnostic,
    starts_template,
    syntax_diagnostic,
)

KeyPath = tuple[str | int, ...]

# A recipe is small. A file with more nodes than this is an alias bomb or a mistake,
# and walking it would hang `validate` in CI.
MAX_NODES = 200_000


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_YAML_TAG = "tag:yaml.org,2002:"
_TIMESTAMP_TAG = _YAML_TAG + "timestamp"
_MERGE_TAG = _YAML_TAG + "merge"
_MAP_TAG = _YAML_TAG + "map"
_SEQ_TAG = _YAML_TAG + "seq"
# Scalar tags whose values are JSON. Anything else (!!binary gives bytes,
# !!python/... and custom !Tags mean nothing to a recipe) is refused by name.
_SCALAR_TAGS = frozenset(_YAML_TAG + t for t in ("str", "int", "float", "bool", "null"))

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in a file."""

    line: int
    column: int


# Marks a key that came from a `<<` merge, which later keys may override.
_MERGED = Mark(0, 0)


@dataclass(frozen=True, slots=True)
class ScalarInfo:
    """How a scalar was written, so template errors can be mapped back to recipe lines."""

    style: str | None  # None plain, "|" literal, ">" folded, "'" or '"' quoted
    raw: str  # the scalar's text before type resolution ("no", "1.0", ...)


@dataclass
class Document:
    """Plain data (dicts, lists, str, int, float, bool, None) with a position for every path."""

    file: str
    data: Any
    key_marks: dict[KeyPath, Mark] = field(default_factory=dict)
    value_marks: dict[KeyPath, Mark] = field(default_factory=dict)
    scalars: dict[KeyPath, ScalarInfo] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def mark(self, path: KeyPath, *, key: bool = True) -> Mark:
        """Where ``path`` is written; falls back to the nearest enclosing key that exists."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            preferred = self.key_marks if key else self.value_marks
            found = preferred.get(prefix) or self.value_marks.get(prefix)
            if found is not None:
                return found
        return Mark(1, 1)

    def diagnostic(
        self,
        path: KeyPath,
        message: str,
        *,
        key: bool = True,
        severity: Severity = Severity.ERROR,
    ) -> Diagnostic:
        """A located error (or warning) for ``path``."""
        where = self.mark(path, key=key)
        return Diagnostic(self.file, where.line, where.column, format_path(path), message, severity)


def format_path(path: KeyPath) -> str:
    """``("tasks", "a b", 0)`` → ``$.tasks["a b"][0]``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _SIMPLE_KEY.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


def load_file(path: Path, display: str | None = None) -> Document:
    """Read and parse ``path``; raise :class:`DiagnosticError` on unreadable or malformed YAML."""
    shown = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DiagnosticError(
            Diagnostic(shown, 0, 0, "", f"cannot read file: {exc.strerror}")
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DiagnosticError(
            Diagnostic(
                shown,
                0,
                0,
                "",
                f"file is not UTF-8 text (byte {exc.start}); save it as UTF-8",
            )
        ) from None
    return load_text(text, shown)


def load_text(text: str, file: str) -> Document:
    """Parse YAML text; the document's top level must be a mapping."""
    doc = Document(file=file, data=None, lines=LINE_BREAK.split(text))
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise DiagnosticError(syntax_diagnostic(exc, file, doc.lines)) from None
    except yaml.reader.ReaderError as exc:
        raise DiagnosticError(reader_diagnostic(exc, file, text)) from None
    except yaml.YAMLError as exc:  # unmarked errors: encoding and the like
        raise DiagnosticError(Diagnostic(file, 0, 0, "", f"cannot parse YAML: {exc}")) from None
    except UnicodeError:  # lone surrogates: only from text that was never a UTF-8 file
        raise DiagnosticError(
            Diagnostic(file, 0, 0, "", "the text is not valid Unicode; save the file as UTF-8")
        ) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise DiagnosticError(Diagnostic(file, 0, 0, "", TOO_DEEP)) from None
    if root is None or _is_empty(root):
        raise DiagnosticError(
            Diagnostic(file, 1, 1, "", "the file is empty; a recipe starts with 'version: 1'")
        )
    if not isinstance(root, MappingNode):
        where = _mark(root)
        raise DiagnosticError(
            Diagnostic(
                file,
                where.line,
                where.column,
                "$",
                "a recipe must be a mapping of keys (version:, name:, tasks:, ...), "
                f"not {_node_kind(root)}",
            )
        )
    builder = _Builder(doc)
    doc.data = builder.build(root, ())
    return doc


class _Builder:
    """Turns composed nodes into plain data, recording marks and rejecting duplicates."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.constructor = SafeConstructor()
        self.nodes_seen = 0
        self.building: set[int] = set()  # ids of the nodes enclosing the current one
        # A mapping's own keys, remembered from before `<<` merged others into it:
        # an alias visits the (by then flattened) node again.
        self.own_keys: dict[int, set[int]] = {}

    def build(self, node: Node, path: KeyPath) -> Any:
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise DiagnosticError(
                self.doc.diagnostic(
                    path,
                    f"the file expands to more than {MAX_NODES} values (too many aliases?); "
                    "a recipe should be far smaller",
                )
            )
        if len(path) > MAX_DEPTH:
            where = _mark(node)
            raise DiagnosticError(Diagnostic(self.doc.file, where.line, where.column, "", TOO_DEEP))
        self.doc.value_marks.setdefault(path, _mark(node))
        if id(node) in self.building:
            raise DiagnosticError(
                self.doc.diagnostic(
                    path,
                    "this alias refers to a value that contains it, which never ends; "
                    "recipes cannot be recursive",
                )
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self.building.add(id(node))
        try:
            if isinstance(node, MappingNode):
                self._check_tag(node, path, _MAP_TAG)
                return self._mapping(node, path)
            assert isinstance(node, SequenceNode)
            self._check_tag(node, path, _SEQ_TAG)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        finally:
            self.building.discard(id(node))

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        own_keys = self.own_keys.setdefault(id(node), {id(key_node) for key_node, _ in node.value})
        self._expand_merge_keys(node, path)
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, node, path)
            key_path = (*path, key)
            key_mark = _mark(key_node)
            merged = id(key_node) not in own_keys
            if key in first_seen and not merged and first_seen[key] != _MERGED:
                first = first_seen[key]
                raise DiagnosticError(
                    Diagnostic(
                        self.doc.file,
                        key_mark.line,
                        key_mark.column,
                        format_path(key_path),
                        f"duplicate key {key!r} (first defined at line {first.line}); "
                        "YAML would silently keep only the last one: remove or rename one",
                    )
                )
            # Keys written in this mapping override keys merged in with `<<`.
            first_seen[key] = _MERGED if merged else key_mark
            if not merged or key_path not in self.doc.key_marks:
                self.doc.key_marks[key_path] = key_mark
            result[key] = self.build(value_node, key_path)
        return result

    def _expand_merge_keys(self, node: MappingNode, path: KeyPath) -> None:
        # `<<: *defaults` is common in hand-written YAML; PyYAML's flatten_mapping
        # applies the YAML 1.1 merge rules, placing merged keys first.
        if not any(k.tag == _MERGE_TAG for k, _ in node.value):
            return
        try:
            self.constructor.flatten_mapping(node)
        except ConstructorError as exc:
            raise DiagnosticError(
                self.doc.diagnostic(path, f"cannot merge with '<<': {exc.problem}")
            ) from None

    def _check_tag(self, node: Node, path: KeyPath, plain: str) -> None:
        # We build mappings and lists ourselves, so a tag on one would be silently
        # dropped; `!!python/object/new:os.system [ls]` must not read as a list.
        if node.tag != plain:
            raise DiagnosticError(self.doc.diagnostic(path, _unsupported_tag(node.tag), key=False))

    def _key(self, node: Node, owner: MappingNode, path: KeyPath) -> str:
        if not isinstance(node, ScalarNode):
            where = _mark(owner)
            if starts_template(self.doc.lines, where.line, where.column):
                # `prompt: {{ transcript.text }}` parses as a mapping inside a mapping.
                raise DiagnosticError(
                    Diagnostic(
                        self.doc.file,
                        where.line,
                        where.column,
                        format_path(path),
                        UNQUOTED_TEMPLATE,
                    )
                )
            raise DiagnosticError(
                self.doc.diagnostic(path, "a key must be plain text, not a list or mapping")
            )
        # `yes:`, `on:`, `1:` are booleans and numbers to YAML; as keys a person means
        # the text they typed, so keep it.
        return str(node.value)

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        # The C parser reports a plain scalar's style as "" and the Python one as None.
        self.doc.scalars[path] = ScalarInfo(style=node.style or None, raw=str(node.value))
        if node.tag == _TIMESTAMP_TAG:
            # Dates are not JSON; keep what the person wrote.
            return str(node.value)
        if node.tag not in _SCALAR_TAGS:
            raise DiagnosticError(self.doc.diagnostic(path, _unsupported_tag(node.tag), key=False))
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError, LookupError):
            # `!!int ten`, or a plain `0b_` that YAML's number pattern accepts but
            # int() does not: both are text the person meant literally or mistyped.
            kind = _TAG_WORDS.get(node.tag, _shown_tag(node.tag))
            message = (
                f"cannot read {node.value!r} as {kind}; put it in quotes if it is text, "
                "or correct the value"
            )
            raise DiagnosticError(self.doc.diagnostic(path, message, key=False)) from None


_TAG_WORDS = {
    _YAML_TAG + "int": "a whole number",
    _YAML_TAG + "float": "a number",
    _YAML_TAG + "bool": "true or false",
    _YAML_TAG + "null": "an empty value",
}


def _shown_tag(tag: str) -> str:
    """A tag as it is written in the file: ``!!python/object``, not the expanded URI."""
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


def _unsupported_tag(tag: str) -> str:
    return (
        f"unsupported YAML tag {_shown_tag(tag)!r}; remove the tag "
        "(recipes use plain YAML values only)"
    )


def _is_empty(node: Node) -> bool:
    # A lone `---` is a document holding one empty value, not a recipe.
    return isinstance(node, ScalarNode) and node.value == "" and not node.style


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _node_kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    return f"a single value ({str(node.value)[:40]!r})"


# PyYAML's parser messages are precise but written for programmers (and the C and
# pure-Python parsers word them differently). Each entry maps a fragment of the
# problem text to a sentence that says what to do.
def iter_paths(data: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every (path, value) pair below ``data``, depth first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_paths(value, (*path, index))
