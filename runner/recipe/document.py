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

from runner.diagnostics import Diagnostic
from runner.errors import DiagnosticError

KeyPath = tuple[str | int, ...]

# A recipe is small. A file with more nodes than this is an alias bomb or a mistake,
# and walking it would hang `validate` in CI.
MAX_NODES = 200_000
# Recipes nest a dozen levels (a json_schema a few dozen more). Deeper input is
# garbage, and would exhaust Python's recursion limit instead of getting a message.
MAX_DEPTH = 100

# The line breaks YAML counts (str.splitlines also splits at \v, \f and others,
# which would put our line numbers out of step with the parser's marks).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

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

    def diagnostic(self, path: KeyPath, message: str, *, key: bool = True) -> Diagnostic:
        """A located error for ``path``."""
        where = self.mark(path, key=key)
        return Diagnostic(self.file, where.line, where.column, format_path(path), message)


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
    doc = Document(file=file, data=None, lines=_LINE_BREAK.split(text))
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise DiagnosticError(_syntax_diagnostic(exc, file, doc.lines)) from None
    except yaml.reader.ReaderError as exc:
        raise DiagnosticError(_reader_diagnostic(exc, file, text)) from None
    except yaml.YAMLError as exc:  # unmarked errors: encoding and the like
        raise DiagnosticError(Diagnostic(file, 0, 0, "", f"cannot parse YAML: {exc}")) from None
    except UnicodeError:  # lone surrogates: only from text that was never a UTF-8 file
        raise DiagnosticError(
            Diagnostic(file, 0, 0, "", "the text is not valid Unicode; save the file as UTF-8")
        ) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise DiagnosticError(Diagnostic(file, 0, 0, "", _TOO_DEEP)) from None
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
            raise DiagnosticError(
                Diagnostic(self.doc.file, where.line, where.column, "", _TOO_DEEP)
            )
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
            if _starts_template(self.doc.lines, where):
                # `prompt: {{ transcript.text }}` parses as a mapping inside a mapping.
                raise DiagnosticError(
                    Diagnostic(
                        self.doc.file,
                        where.line,
                        where.column,
                        format_path(path),
                        _UNQUOTED_TEMPLATE,
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


_TOO_DEEP = (
    f"values are nested more than {MAX_DEPTH} levels deep; a recipe should be far "
    "flatter (is an indentation or a bracket wrong?)"
)

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


_UNQUOTED_TEMPLATE = (
    "YAML reads a value that starts with '{' as a mapping; put the whole value in quotes "
    "(\"{{ ... }} ...\") or write it as a '|' block"
)

# `key: {{` or `- {%` at the start of a line: a template written as a plain YAML
# value. Only the first key on the line counts: in `prompt: Summary: {{ x }}` and
# `prompt: "a: {{ x }}"` the braces are not where the value starts.
_TEMPLATE_START = re.compile(r"^[ \t]*(?:-[ \t]+)*(?:[^\s'\"#:{\[-][^:]*:[ \t]+)?(\{[{%])")


def _starts_template(lines: list[str], where: Mark) -> bool:
    text = lines[where.line - 1] if 1 <= where.line <= len(lines) else ""
    return text[where.column - 1 : where.column + 1] in ("{{", "{%")


def _unquoted_template(file: str, lines: list[str], line: int) -> Diagnostic | None:
    """The syntax error comes from a template that is not in quotes, if it does."""
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    found = _TEMPLATE_START.match(text)
    if found is None:
        return None
    return Diagnostic(file, line, found.start(1) + 1, "", _UNQUOTED_TEMPLATE)


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
_SYNTAX_ADVICE: tuple[tuple[str, str], ...] = (
    # PyYAML 6.0.4's C scanner stops deep flow nesting itself, before our own count.
    ("exceeded maximum nesting depth", _TOO_DEEP),
    (
        "mapping values are not allowed",
        "unexpected ':' here; check the indentation of this line, or put the value in "
        "quotes if it contains ': '",
    ),
    (
        "could not find expected ':'",
        "a key is missing its ':' (or the line above is indented differently from its neighbours)",
    ),
    (
        "did not find expected key",
        "the indentation is inconsistent: align this line with the keys above it",
    ),
    (
        "did not find expected '-' indicator",
        "a list item is indented differently from the items above it",
    ),
    (
        # The pure-Python parser's wording of the same mistake.
        "while parsing a block collection",
        "a list item is indented differently from the items above it",
    ),
    (
        "expected <block end>, but found",
        "the indentation is inconsistent: align this line with the keys above it",
    ),
    (
        "did not find expected node content",
        "a value is missing here, or a '[' or '{' is not closed",
    ),
    (
        "did not find expected ',' or",
        "a '[' or '{' is not closed, or a comma is missing between its items",
    ),
    (
        "found unexpected end of stream",
        "the file ends inside an unfinished value; is a quote or bracket not closed?",
    ),
    (
        "expected a single document",
        "the file holds more than one YAML document ('---'); keep one recipe per file",
    ),
    (
        "found unknown escape character",
        "unknown backslash escape inside double quotes; use single quotes or a '|' block",
    ),
    # Tags before escapes: a tag's '%' escapes are "URI escape sequences".
    (
        " a tag",
        "this YAML tag ('!...') is malformed; recipes use plain values: remove the tag, or "
        "put the value in quotes if the '!' is part of the text",
    ),
    (
        "hexdecimal number",  # the C parser's spelling
        "invalid backslash escape inside double quotes ('\\x', '\\u' and '\\U' need hex "
        "digits); use single quotes or a '|' block",
    ),
    (
        "hexadecimal numbers",
        "invalid backslash escape inside double quotes ('\\x', '\\u' and '\\U' need hex "
        "digits); use single quotes or a '|' block",
    ),
    (
        "while scanning a quoted scalar",
        "a quoted value is not closed; add the closing quote",
    ),
    (
        "while scanning an anchor",
        "'&' starts an anchor and needs a name (letters, digits, '-', '_') right after it; "
        "put the value in quotes if the '&' is part of the text",
    ),
    (
        "while scanning an alias",
        "'*' starts an alias and needs a name (letters, digits, '-', '_') right after it; "
        "put the value in quotes if the '*' is part of the text",
    ),
    (
        "while scanning a block scalar",
        "after '|' or '>' only '-', '+' or a digit 1-9 may follow on the same line; "
        "start the text itself on the next line, indented",
    ),
    (
        "sequence entries are not allowed",
        "a '- ' list item cannot start on the same line as its key; put it on the next "
        "line, indented under the key",
    ),
    (
        "directive",
        "a line cannot start with '%' (YAML reads it as a directive); put the value in quotes",
    ),
    (
        "<document start>",
        "text after a '...' line, which ends the YAML document; remove the '...' line, or "
        "put the value in quotes",
    ),
)


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, file: str, lines: list[str]) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 0
    column = mark.column + 1 if mark else 0
    problem = exc.problem or ""
    context = exc.context or ""
    template = _unquoted_template(file, lines, line)
    if template is not None:
        return template
    if "cannot start any token" in problem or "tab character" in problem:
        return _bad_character(file, lines, line, column)
    if _after_value(problem, lines, line, column):
        return Diagnostic(
            file,
            line,
            column,
            "",
            "unexpected text after the value on this line (a closing quote or bracket ends "
            "it); put the whole value in quotes",
        )
    unclosed = _unclosed(exc, file, lines)
    if unclosed is not None:
        return unclosed
    if "found undefined alias" in problem:
        name = _alias_at(lines, line, column)
        return Diagnostic(
            file,
            line,
            column,
            "",
            f"'*{name}' refers to an anchor '&{name}' that is not defined above it; "
            f"define it first (e.g. `defaults: &{name}`) or remove the alias",
        )
    advice = next(
        (text for needle, text in _SYNTAX_ADVICE if needle in problem or needle in context),
        f"invalid YAML: {problem or context}".strip(),
    )
    return Diagnostic(file, line, column, "", advice)


def _unclosed(exc: yaml.MarkedYAMLError, file: str, lines: list[str]) -> Diagnostic | None:
    """A quote or bracket left open: point at where it opens, not where YAML gave up.

    YAML notices an unclosed quote at the end of the file and an unclosed '[' at
    some later line; the person has to fix the line that opened it.
    """
    opened, gave_up = exc.context_mark, exc.problem_mark
    context, problem = exc.context or "", exc.problem or ""
    if opened is None or gave_up is None:
        return None
    text = lines[opened.line] if opened.line < len(lines) else ""
    char = text[opened.column] if opened.column < len(text) else "?"
    where = f"line {gave_up.line + 1}, column {gave_up.column + 1}"
    if "quoted scalar" in context and (
        "end of stream" in problem or "document separator" in problem
    ):
        message = f"this quoted value is never closed; add the closing {char} at its end"
    elif "flow sequence" in context or "flow mapping" in context:
        closer = "]" if char == "[" else "}"
        message = (
            f"this '{char}' is not closed with '{closer}', or a comma is missing between "
            f"its items (YAML gave up at {where})"
        )
    else:
        return None
    return Diagnostic(file, opened.line + 1, opened.column + 1, "", message)


def _after_value(problem: str, lines: list[str], line: int, column: int) -> bool:
    """True when YAML wanted a new key but found more text in the middle of a line.

    `prompt: "Summarize" the call` ends the value at the closing quote; the words
    after it are not an indentation mistake, although the parser's words say so.
    """
    if "did not find expected key" not in problem and "expected <block end>" not in problem:
        return False
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    indent = len(text) - len(text.lstrip(" "))
    before = text[: column - 1].rstrip()
    return column - 1 > indent and before.endswith(("'", '"', "]", "}"))


def _alias_at(lines: list[str], line: int, column: int) -> str:
    # The C parser's message does not name the alias; read it from the line.
    text = lines[line - 1][column - 1 :] if 1 <= line <= len(lines) else ""
    match = re.match(r"\*([0-9A-Za-z_-]+)", text)  # PyYAML's anchor characters
    return match.group(1) if match else "name"


def _reader_diagnostic(exc: yaml.reader.ReaderError, file: str, text: str) -> Diagnostic:
    # The reader refuses control characters before parsing starts, and reports a
    # character offset rather than a line.
    position = max(0, min(exc.position, len(text)))
    before = _LINE_BREAK.split(text[:position])
    code = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
    return Diagnostic(
        file,
        len(before),
        len(before[-1]) + 1,
        "",
        f"the file contains the control character {code}, which YAML does not allow; "
        "delete it (it is often invisible: retype the line)",
    )


def _bad_character(file: str, lines: list[str], line: int, column: int) -> Diagnostic:
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    tab = text.find("\t")
    if tab >= 0:
        return Diagnostic(
            file,
            line,
            tab + 1,
            "",
            "a tab character is used for indentation; YAML indents with spaces only: "
            "replace the tab with spaces",
        )
    char = text[column - 1] if 0 < column <= len(text) else "?"
    return Diagnostic(
        file, line, column, "", f"a value cannot start with {char!r}; put the value in quotes"
    )


def iter_paths(data: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every (path, value) pair below ``data``, depth first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_paths(value, (*path, index))
