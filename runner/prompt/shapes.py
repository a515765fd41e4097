"""What each name in a template can hold, checked in every branch without rendering.

``validate`` renders each template once against a sample transcript, and a render
takes one branch of each ``{% if %}``: a typo in the ``{% else %}`` would wait for
the real run, after other tasks were paid for. Here each template's syntax tree is
walked, every branch, and every attribute looked up on a value of known shape
(``transcript``, a transcript segment, ``item``, ``recipe``, ``tasks``, ``vars``)
and every filter and test is checked.

Conservative by design: a value whose shape is unknown (a ``vars`` value, a field of
a JSON reply, whatever a filter returns) accepts anything; a name tested with
``is defined`` or given a ``| default`` is not required; a name assigned anywhere in
the template (``set``, ``for``, macro arguments, imports) is not required either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from runner.diagnostics import Diagnostic, display_path, suggest
from runner.prompt.templating import TemplateEngine, missing_message
from runner.prompt.views import ItemView, Namespace, RecipeView, TaskResultView, TranscriptView
from runner.recipe.model import Template
from runner.transcript.model import Paragraph, Sentence, Utterance, Word
from runner.transcript.understanding import Chapter, Entity, KeyPhrase, SentimentResult, Timestamp

__all__ = ["branch_problems"]


@dataclass(frozen=True, slots=True)
class Record:
    """A value with known fields; ``path`` names it in messages as ``render`` does."""

    path: str
    fields: Mapping[str, Shape]
    methods: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class ListOf:
    element: Shape


# None: unknown, anything goes.
Shape = Record | ListOf | None

_MAPPING_METHODS = frozenset({"items", "keys", "values", "get"})


def _segment(kind: type, path: str) -> Record:
    known: dict[str, Shape] = {f.name: None for f in fields(kind)}
    if "words" in known:
        known["words"] = ListOf(WORD)
    return Record(path, known)


WORD = _segment(Word, "word")
TIMESTAMP = _segment(Timestamp, "timestamp")
_TRANSCRIPT_FIELDS: dict[str, Shape] = {
    **dict.fromkeys(TranscriptView.template_fields),
    "words": ListOf(WORD),
    "utterances": ListOf(_segment(Utterance, "utterance")),
    "sentences": ListOf(_segment(Sentence, "sentence")),
    "paragraphs": ListOf(_segment(Paragraph, "paragraph")),
    "speakers": ListOf(None),
    "entities": ListOf(_segment(Entity, "entity")),
    "sentiment_analysis": ListOf(_segment(SentimentResult, "sentiment result")),
    "chapters": ListOf(_segment(Chapter, "chapter")),
    "key_phrases": ListOf(
        Record(
            "key phrase",
            {**_segment(KeyPhrase, "key phrase").fields, "timestamps": ListOf(TIMESTAMP)},
        )
    ),
    "translations": None,  # by language code: the recipe's to know
}
TRANSCRIPT = Record("transcript", _TRANSCRIPT_FIELDS)


def shape_of(value: Any) -> Shape:
    """The shape of a context value, as far as it is known before the run."""
    if isinstance(value, TranscriptView):
        return TRANSCRIPT
    if isinstance(value, ItemView):
        return Record("item", {"name": None, "source": None, "vars": None})
    if isinstance(value, RecipeView):
        return Record("recipe", {"name": None, "description": None})
    if isinstance(value, TaskResultView):
        return Record(f"tasks.{value.task}", {"task": None, "text": None, "json": None})
    if isinstance(value, Namespace) and value.path in ("vars", "tasks"):
        # A vars value's own fields are the user's data: unknown here.
        inner = value.path == "tasks"
        known = {key: shape_of(item) if inner else None for key, item in value.items()}
        return Record(value.path, known, _MAPPING_METHODS)
    return None


# Operands of these may be undefined on purpose.
_GUARD_TESTS = frozenset({"defined", "undefined"})
_GUARD_FILTERS = frozenset({"default", "d"})
# Filters that hand back an element, or the same list.
_ELEMENT_FILTERS = frozenset({"first", "last", "random"})
_LIST_FILTERS = frozenset({"list", "reverse", "sort", "unique", "selectattr", "rejectattr"})


@dataclass(frozen=True, slots=True)
class _Found:
    file: str | None  # a partial's path; None for the template itself
    line: int
    column: int  # in a partial; 0 when unknown
    needle: str
    message: str


class _Walk:
    def __init__(self, engine: TemplateEngine, context: Mapping[str, Any]) -> None:
        self.env = engine.env
        self.context = context
        self.found: list[_Found] = []
        self.file: str | None = None
        self.lines: list[str] = []  # the partial's, while walking one
        self.seen: set[str] = set()
        self.bound: set[str] = set()

    def template(self, tree: nodes.Template, scope: dict[str, Shape]) -> None:
        bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        bound.update(node.target for node in tree.find_all(nodes.Import))
        for node in tree.find_all(nodes.FromImport):
            bound.update(n if isinstance(n, str) else n[-1] for n in node.names)
        outer = self.bound
        self.bound = outer | bound
        local = {name: shape for name, shape in scope.items() if name not in bound}
        self.visit(tree, local)
        self.bound = outer

    def visit(self, node: nodes.Node, scope: dict[str, Shape]) -> Shape:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is not None:
            shape: Shape = method(node, scope)
            return shape
        self.children(node, scope)
        return None

    def children(self, node: nodes.Node, scope: dict[str, Shape]) -> None:
        for child in node.iter_child_nodes():
            self.visit(child, scope)

    # names and lookups -----------------------------------------------------------------

    def visit_Name(self, node: nodes.Name, scope: dict[str, Shape]) -> Shape:
        if node.ctx != "load":
            return None
        if node.name in scope:
            return scope[node.name]
        known = node.name in self.bound or node.name in self.env.globals
        if not known and node.name not in _JINJA_NAMES and node.name not in self.context:
            self.report(node, node.name, missing_message(node.name, None, (), self.context))
        return None

    def visit_Getattr(self, node: nodes.Getattr, scope: dict[str, Shape]) -> Shape:
        return self.lookup(node, self.visit(node.node, scope), node.attr)

    def visit_Getitem(self, node: nodes.Getitem, scope: dict[str, Shape]) -> Shape:
        holder = self.visit(node.node, scope)
        self.visit(node.arg, scope)
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        if isinstance(holder, ListOf) and isinstance(key, int):
            return holder.element
        if isinstance(key, str):
            return self.lookup(node, holder, key)
        return None

    def lookup(self, node: nodes.Node, holder: Shape, name: str) -> Shape:
        if not isinstance(holder, Record):
            return None
        if name in holder.fields:
            return holder.fields[name]
        if name not in holder.methods:
            parent = holder.path
            message = missing_message(f"{parent}.{name}", parent, list(holder.fields), {})
            self.report(node, name, message)
        return None

    # filters and tests ------------------------------------------------------------------

    def visit_Filter(self, node: nodes.Filter, scope: dict[str, Shape]) -> Shape:
        return self.filtered(node, scope, self.env.filters, "filter")

    def visit_Test(self, node: nodes.Test, scope: dict[str, Shape]) -> Shape:
        self.filtered(node, scope, self.env.tests, "test")
        return None

    def filtered(
        self, node: nodes.Filter | nodes.Test, scope: dict[str, Shape], known: Any, kind: str
    ) -> Shape:
        if node.name not in known:
            hint = suggest(node.name, known)
            lists = " (docs/templates.md lists the filters)" if kind == "filter" else ""
            self.report(node, node.name, f"unknown {kind} {node.name!r}{hint}{lists}")
        for child in (*node.args, *(k.value for k in node.kwargs)):
            self.visit(child, scope)
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.visit(extra, scope)
        if node.node is None:  # a {% filter %} block's filter
            return None
        guarded = node.name in (_GUARD_FILTERS if kind == "filter" else _GUARD_TESTS)
        operand = self.guarded(node.node, scope) if guarded else self.visit(node.node, scope)
        if node.name in _ELEMENT_FILTERS and isinstance(operand, ListOf):
            return operand.element
        return operand if node.name in _LIST_FILTERS else None

    def guarded(self, node: nodes.Node, scope: dict[str, Shape]) -> Shape:
        """An operand that may be undefined: check only what is inside its brackets."""
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getitem):
                self.visit(node.arg, scope)
            node = node.node
        if not isinstance(node, nodes.Name):
            self.visit(node, scope)
        return None

    # scopes --------------------------------------------------------------------------

    def visit_For(self, node: nodes.For, scope: dict[str, Shape]) -> Shape:
        iterated = self.visit(node.iter, scope)
        inner = dict(scope)
        for name in node.target.find_all(nodes.Name):
            inner[name.name] = None
        if isinstance(node.target, nodes.Name) and isinstance(iterated, ListOf):
            inner[node.target.name] = iterated.element
        for part in (node.test, *node.body, *node.else_):
            if part is not None:
                self.visit(part, inner)
        return None

    def visit_Macro(self, node: nodes.Macro, scope: dict[str, Shape]) -> Shape:
        # An argument named like a context value (`body(transcript)`) is taken to be it:
        # that is how a partial gets the transcript.
        inner = {**scope, **{a.name: _CONTEXT_SHAPES.get(a.name) for a in node.args}}
        for part in (*node.defaults, *node.body):
            self.visit(part, inner)
        return None

    # partials ------------------------------------------------------------------------

    def visit_Include(self, node: nodes.Include, scope: dict[str, Shape]) -> Shape:
        self.partial(node.template, scope)
        return None

    def visit_Import(self, node: nodes.Import, scope: dict[str, Shape]) -> Shape:
        self.partial(node.template, scope)
        return None

    def visit_FromImport(self, node: nodes.FromImport, scope: dict[str, Shape]) -> Shape:
        self.partial(node.template, scope)
        return None

    def partial(self, name_node: nodes.Expr, scope: dict[str, Shape]) -> None:
        if not isinstance(name_node, nodes.Const) or not isinstance(name_node.value, str):
            return
        try:
            source, path, _ = self.env.loader.get_source(self.env, name_node.value)  # type: ignore[union-attr]
            tree = self.env.parse(source, filename=path)
        except (jinja2.TemplateNotFound, TemplateSyntaxError, OSError):
            return  # the render reports it, with its own words
        if path is None or path in self.seen:
            return
        self.seen.add(path)
        outer = self.file, self.lines
        self.file, self.lines = path, source.splitlines()
        self.template(tree, scope)
        self.file, self.lines = outer

    def report(self, node: nodes.Node, needle: str, message: str) -> None:
        text = self.lines[node.lineno - 1] if 0 < node.lineno <= len(self.lines) else ""
        column = text.find(needle) + 1
        self.found.append(_Found(self.file, node.lineno, column, needle, message))


# Names Jinja itself provides inside templates.
_JINJA_NAMES = frozenset({"loop", "caller", "varargs", "kwargs", "self", "super"})
_CONTEXT_SHAPES: dict[str, Shape] = {"transcript": TRANSCRIPT}


def branch_problems(
    engine: TemplateEngine, template: Template, context: Mapping[str, Any]
) -> list[Diagnostic]:
    """Every unknown attribute, filter and test in ``template``, in every branch,
    located in the recipe (or in the partial that has it)."""
    try:
        tree = engine.env.parse(template.source)
    except TemplateSyntaxError:
        return []  # the render reports it
    walk = _Walk(engine, context)
    walk.template(tree, {name: shape_of(value) for name, value in context.items()})
    problems: list[Diagnostic] = []
    for found in _unique(walk.found):
        if found.file is None:
            problems.append(engine.locate(template, found.line, found.message, needle=found.needle))
        else:
            problems.append(
                Diagnostic(display_path(found.file), found.line, found.column, "", found.message)
            )
    return problems


def _unique(found: list[_Found]) -> Iterator[_Found]:
    seen: set[tuple[str | None, int, str]] = set()
    for entry in found:
        key = (entry.file, entry.line, entry.message)
        if key not in seen:
            seen.add(key)
            yield entry
