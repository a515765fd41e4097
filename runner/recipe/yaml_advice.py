"""YAML parser errors rewritten as advice a person who does not code can follow.

PyYAML says "mapping values are not allowed here"; a prompt editor needs to hear
that the value has a ': ' in it and wants quotes. Each rule below matches the
parser's words and says where the mistake most likely is and how to fix it.
"""

from __future__ import annotations

import re

import yaml

from runner.diagnostics import Diagnostic

# Recipes nest a dozen levels (a json_schema a few dozen more). Deeper input is
# garbage, and would exhaust Python's recursion limit instead of getting a message.
MAX_DEPTH = 100

# The line breaks YAML counts (str.splitlines also splits at \v, \f and others,
# which would put our line numbers out of step with the parser's marks).
LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

TOO_DEEP = (
    f"values are nested more than {MAX_DEPTH} levels deep; a recipe should be far "
    "flatter (is an indentation or a bracket wrong?)"
)

UNQUOTED_TEMPLATE = (
    "YAML reads a value that starts with '{' as a mapping; put the whole value in quotes "
    "(\"{{ ... }} ...\") or write it as a '|' block"
)

# `key: {{` or `- {%` at the start of a line: a template written as a plain YAML
# value. Only the first key on the line counts: in `prompt: Summary: {{ x }}` and
# `prompt: "a: {{ x }}"` the braces are not where the value starts.
_TEMPLATE_START = re.compile(r"^[ \t]*(?:-[ \t]+)*(?:[^\s'\"#:{\[-][^:]*:[ \t]+)?(\{[{%])")


def starts_template(lines: list[str], line: int, column: int) -> bool:
    """Whether a Jinja tag starts at this 1-based position: a template left unquoted."""
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    return text[column - 1 : column + 1] in ("{{", "{%")


_BLOCK_HEADER = re.compile(r":[ \t]*([|>])[-+0-9]*[ \t]*(?:#.*)?$")


def unquoted_template(file: str, lines: list[str], line: int) -> Diagnostic | None:
    """The syntax error comes from a template that is not in quotes, if it does."""
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    found = _TEMPLATE_START.match(text)
    if found is None:
        return None
    return Diagnostic(file, line, found.start(1) + 1, "", UNQUOTED_TEMPLATE)


def under_indented_block_line(file: str, lines: list[str], line: int) -> Diagnostic | None:
    """The syntax error comes from a line of a '|' or '>' block indented less than the
    block's first line, if it does: YAML ends the block there and reads the line as a
    key, but the person meant it as more text (or template) of the block."""
    if not 1 <= line <= len(lines) or not lines[line - 1].strip():
        return None
    header = _block_above(lines, line)
    if header is None:
        return None
    text = lines[line - 1]
    indicator = _BLOCK_HEADER.search(lines[header - 1].rstrip())
    style = indicator.group(1) if indicator else "|"
    return Diagnostic(
        file,
        line,
        len(text) - len(text.lstrip()) + 1,
        "",
        f"this line belongs to the '{style}' block that starts on line {header}, but it is "
        "indented less than the block's first line; indent it like the lines above it",
    )


# A line YAML can read as a key (`max_tokens: 300`, `- item`, a comment): not prose.
_KEY_LINE = re.compile(r"^[ \t]*(?:-(?:[ \t]|$)|#|[^\s#][^#]*?:(?:[ \t]|$))")

# YAML notices a block line pulled out to its key's level a line or two later (at
# the next more-indented line), so the lines just above the error are tried too.
_LOOK_BACK = 3


def _text_line_out_of_block(file: str, lines: list[str], line: int) -> Diagnostic | None:
    """A line of prose at the level of the block's key (or further left), just after a
    '|' or '>' block: YAML ends the block above it and then stumbles a line or two
    lower, but the line that broke is this one."""
    for number in range(min(line, len(lines)), max(0, line - _LOOK_BACK - 1), -1):
        text = lines[number - 1]
        if not text.strip() or _KEY_LINE.match(text):
            continue
        header = _block_ending_above(lines, number)
        if header is None:
            return None
        indicator = _BLOCK_HEADER.search(lines[header - 1].rstrip())
        style = indicator.group(1) if indicator else "|"
        return Diagnostic(
            file,
            number,
            len(text) - len(text.lstrip()) + 1,
            "",
            f"this line belongs to the '{style}' block that starts on line {header}, but it "
            "is indented no deeper than the block's key, so YAML ends the block above it; "
            "a block's lines must all stay indented: indent it like the lines above it",
        )
    return None


def _block_ending_above(lines: list[str], line: int) -> int | None:
    """The `key: |` header whose block's lines come just above ``line`` (blank lines
    aside), when ``line`` is no more indented than that header."""
    indent = len(lines[line - 1]) - len(lines[line - 1].lstrip())
    content_indent: int | None = None  # the least indent of the block's lines so far
    for number in range(line - 1, 0, -1):
        above = lines[number - 1]
        if not above.strip():
            continue
        above_indent = len(above) - len(above.lstrip())
        if content_indent is None or above_indent >= content_indent:
            if above_indent <= indent:
                return None  # the line right above is a sibling, not block text
            content_indent = min(above_indent, content_indent or above_indent)
            continue
        header = _BLOCK_HEADER.search(above.rstrip()) and indent <= above_indent
        return number if header else None
    return None


def _block_above(lines: list[str], line: int) -> int | None:
    """The line of a `key: |` header whose block the text above ``line`` continues:
    the nearest line above that is no more indented than ``line`` is such a header,
    with at least one more-indented line between."""
    indent = len(lines[line - 1]) - len(lines[line - 1].lstrip())
    inside = False
    for number in range(line - 1, 0, -1):
        above = lines[number - 1]
        if not above.strip():
            continue
        above_indent = len(above) - len(above.lstrip())
        if above_indent > indent:
            inside = True
            continue
        # A header level with the line is its sibling: the line is a key of its own.
        header = inside and above_indent < indent and _BLOCK_HEADER.search(above.rstrip())
        return number if header else None
    return None


_SYNTAX_ADVICE: tuple[tuple[str, str], ...] = (
    # PyYAML 6.0.4's C scanner stops deep flow nesting itself, before our own count.
    ("exceeded maximum nesting depth", TOO_DEEP),
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


def syntax_diagnostic(exc: yaml.MarkedYAMLError, file: str, lines: list[str]) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 0
    column = mark.column + 1 if mark else 0
    problem = exc.problem or ""
    context = exc.context or ""
    misplaced = (
        under_indented_block_line(file, lines, line)
        or _text_line_out_of_block(file, lines, line)
        or unquoted_template(file, lines, line)
    )
    if misplaced is not None:
        return misplaced
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


def reader_diagnostic(exc: yaml.reader.ReaderError, file: str, text: str) -> Diagnostic:
    # The reader refuses control characters before parsing starts, and reports a
    # character offset rather than a line.
    position = max(0, min(exc.position, len(text)))
    before = LINE_BREAK.split(text[:position])
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
