"""Jinja's syntax errors told in plain words, at the line and column that broke, with
the fix: typographic quotes inside a tag, a block left open, a ``{{`` meant literally.

Jinja names the line only, and in its own terms ("unexpected char '“' at 170");
a prompt editor needs to hear which character, where, and what to type instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
from jinja2.exceptions import TemplateSyntaxError

from runner.diagnostics import suggest

__all__ = ["SyntaxAdvice", "explain", "unknown_name"]


@dataclass(frozen=True, slots=True)
class SyntaxAdvice:
    line: int  # template line, 1-based
    offset: int | None  # 0-based character in that line, when known
    message: str


_TYPOGRAPHIC = "“”‘’„‚«»"
_UNEXPECTED_CHAR = re.compile(r"unexpected char (.+) at (\d+)$")
_UNCLOSED = re.compile(r"The innermost block that needs to be closed is '(\w+)'")
# Tags that open a block closed by `end<tag>`; `set` only in its block form.
_BLOCK_TAGS = frozenset(
    {"if", "for", "macro", "call", "filter", "block", "with", "autoescape", "raw", "trans"}
)
LITERAL_BRACES = (
    "to write {{ literally, write {{ '{{' }} or put the text in {% raw %}...{% endraw %}"
)


def explain(source: str, exc: TemplateSyntaxError, env: jinja2.Environment) -> SyntaxAdvice:
    message = exc.message or "template syntax error"
    line = exc.lineno or 1
    lines = source.splitlines() or [""]
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    unknown = unknown_name(message, env)
    if unknown is not None:
        return SyntaxAdvice(line, _find(text, _quoted_name(message)), unknown)
    char = _UNEXPECTED_CHAR.search(message)
    if char is not None:
        return _unexpected_char(source, int(char.group(2)), line)
    unclosed = _UNCLOSED.search(message)
    if unclosed is not None and message.startswith("Unexpected end of template"):
        return _unclosed_block(source, env, unclosed.group(1), line)
    if "{{" in text and _in_print(message):
        return _bad_expression(text, line, message)
    tag = text.find("{%")
    return SyntaxAdvice(line, tag if tag >= 0 else None, f"template syntax error: {message}")


def unknown_name(message: str, env: jinja2.Environment) -> str | None:
    """Jinja's "No filter named 'dialog'" (at compile time, or when a filter inside an
    ``{% if %}`` runs) as one message with a "did you mean"; None for other errors."""
    name = _quoted_name(message)
    if message.startswith("No filter named"):
        hint = suggest(name, env.filters)
        return f"unknown filter {name!r}{hint} (docs/templates.md lists the filters)"
    if message.startswith("No test named"):
        return f"unknown test {name!r}{suggest(name, env.tests)}"
    return None


def _quoted_name(message: str) -> str:
    return message.split("'")[1] if "'" in message else ""


def _find(text: str, needle: str) -> int | None:
    found = re.search(rf"\b{re.escape(needle)}\b", text) if needle else None
    return found.start() if found else None


def _unexpected_char(source: str, position: int, line: int) -> SyntaxAdvice:
    before = source[:position]
    line = before.count("\n") + 1
    offset = position - (before.rfind("\n") + 1)
    char = source[position] if position < len(source) else "?"
    if char in _TYPOGRAPHIC:
        return SyntaxAdvice(
            line,
            offset,
            f"typographic quote {char} inside {{{{ }}}} or {{% %}}: a template reads only "
            "straight quotes; use straight quotes \" or ' (an editor's smart quotes put "
            "these in)",
        )
    return SyntaxAdvice(
        line,
        offset,
        f"the character {char!r} cannot appear inside {{{{ }}}} or {{% %}}; remove it, or "
        f"put it in quotes as text ({LITERAL_BRACES})",
    )


def _unclosed_block(source: str, env: jinja2.Environment, tag: str, line: int) -> SyntaxAdvice:
    """Point at the ``{% tag %}`` left open, not at the end of the template where
    Jinja noticed."""
    opened = _innermost_open(source, env, tag)
    fix = f"add {{% end{tag} %}} where its part of the prompt ends"
    if opened is None:
        return SyntaxAdvice(line, None, f"a {{% {tag} %}} is never closed; {fix}")
    open_line, offset = opened
    return SyntaxAdvice(open_line, offset, f"this {{% {tag} %}} is never closed; {fix}")


def _innermost_open(source: str, env: jinja2.Environment, tag: str) -> tuple[int, int] | None:
    stack: list[tuple[str, int]] = []
    expect_name = False
    try:
        for lineno, kind, value in env.lex(source):
            if kind == "block_begin":
                expect_name = True
                continue
            if kind == "whitespace":
                continue
            if expect_name and kind == "name":
                if value in _BLOCK_TAGS:
                    stack.append((value, lineno))
                elif value.startswith("end") and stack and stack[-1][0] == value[3:]:
                    stack.pop()
            expect_name = False
    except TemplateSyntaxError:
        return None
    for name, lineno in reversed(stack):
        if name == tag:
            text = source.splitlines()[lineno - 1]
            found = re.search(r"\{%[-+]?\s*" + re.escape(tag) + r"\b", text)
            return lineno, found.start() if found else 0
    return None


def _in_print(message: str) -> bool:
    return (
        "print statement" in message
        or message in ("unexpected '}'", "unexpected 'end of template'")
        or message.startswith("Expected an expression")
    )


def _bad_expression(text: str, line: int, message: str) -> SyntaxAdvice:
    offset = text.rfind("{{")
    empty_filter = re.search(r"\|\s*-?\}\}", text)
    if empty_filter is not None and "expected token 'name'" in message:
        return SyntaxAdvice(
            line,
            empty_filter.start(),
            "this '|' names no filter; write a filter after it (docs/templates.md lists "
            "them) or remove the '|'",
        )
    if message == "unexpected '}'":
        return SyntaxAdvice(
            line,
            offset,
            f"this {{{{ is closed with a single '}}'; close it with '}}}}' ({LITERAL_BRACES})",
        )
    return SyntaxAdvice(
        line,
        offset,
        f"the text after {{{{ is not a template expression ({message}); {LITERAL_BRACES}",
    )
