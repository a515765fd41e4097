"""The one template engine of transcript-runner: sandboxed, strict, transcript-aware Jinja.

* **Sandboxed**: :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`; reaching
  Python internals (``''.__class__``) is an error, and templates cannot modify data.
* **Strict**: a misspelled variable is an error naming the recipe line, never an
  empty string sent to a paid model. Every missing name in a template is reported
  at once, with a "did you mean" suggestion.
* **Data is never a template**: only recipe text and prompt files are compiled.
  Transcript text, CSV cells, vars and task replies are values.
* **Confined**: ``{% include %}`` and ``{% import %}`` resolve relative to the
  recipe's folder and cannot leave it.
"""

from __future__ import annotations

import contextvars
import functools
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import CodeType, FrameType, TracebackType
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.diagnostics import Diagnostic, display_path, suggest
from runner.errors import TemplateProblem
from runner.prompt.budget import (
    bounded,
    bounded_filters,
    capped_output,
    check_call,
    check_join,
    check_percent,
    concat,
    sized,
)
from runner.prompt.syntax import explain, unknown_name
from runner.prompt.views import (
    ItemView,
    Namespace,
    NoJson,
    NoSpeakerLabelsUsed,
    RecipeView,
    TaskResultView,
    TranscriptUsedAsText,
    TranscriptView,
)
from runner.recipe.model import Template
from runner.transcript import model
from runner.transcript import text as helpers

__all__ = ["TemplateEngine", "TemplateProblem", "used_transcript_fields"]


class TemplateOutsideRecipe(jinja2.TemplateNotFound):
    """An include or import that names a file outside the recipe's folder."""


# --- undefined names: collect them all, then report ---------------------------------


@dataclass(frozen=True, slots=True)
class _Missing:
    name: str  # dotted, e.g. "vars.audiance"
    parent: str | None  # "vars", "transcript", None for a top-level name
    candidates: tuple[str, ...]
    template_line: int
    template_file: str | None  # set when the line is inside an included file


_missing_names: contextvars.ContextVar[list[_Missing] | None] = contextvars.ContextVar(
    "missing_names", default=None
)


class _CollectingUndefined(jinja2.Undefined):
    """Records each use of an undefined name and lets rendering go on.

    After rendering, the engine raises one :class:`TemplateProblem` listing every
    missing name, so a person fixes them all in one go instead of one per run. The
    partially rendered text is discarded and never sent anywhere.
    """

    __slots__ = ()

    def _record(self) -> None:
        found = _missing_names.get()
        if found is None:
            self._fail_with_undefined_error()
        line, file = _template_position(sys._getframe(2))
        parent = self._undefined_obj
        found.append(
            _Missing(
                name=_dotted(parent, self._undefined_name),
                parent=_path_of(parent),
                candidates=_names_in(parent),
                template_line=line,
                template_file=file,
            )
        )

    def __str__(self) -> str:
        self._record()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._record()
        return iter(())

    def __bool__(self) -> bool:
        self._record()
        return False

    def __len__(self) -> int:
        self._record()
        return 0

    def __float__(self) -> float:  # type: ignore[override]
        self._record()
        return 0.0

    def __int__(self) -> int:  # type: ignore[override]
        self._record()
        return 0

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        # Chain: `vars.missing.deeper` reports `vars.missing` once, when used.
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __eq__(self, other: object) -> bool:
        self._record()
        return False

    def __hash__(self) -> int:
        return id(self)


def _dotted(parent: Any, name: str | None) -> str:
    base = _path_of(parent)
    return f"{base}.{name}" if base else str(name)


def _path_of(obj: Any) -> str | None:
    if obj is jinja2.utils.missing or obj is None:
        return None
    if isinstance(obj, Namespace):
        return obj.path
    named = {TranscriptView: "transcript", ItemView: "item", RecipeView: "recipe"}
    for kind, label in named.items():
        if isinstance(obj, kind):
            return label
    if isinstance(obj, TaskResultView):
        return f"tasks.{obj.task}"
    if isinstance(obj, NoJson):
        return f"tasks.{obj.task}.json"
    segments = {
        model.Word: "word",
        model.Utterance: "utterance",
        model.Sentence: "sentence",
        model.Paragraph: "paragraph",
    }
    for kind, label in segments.items():
        if isinstance(obj, kind):
            return label
    if isinstance(obj, list | tuple):
        return f"list of {len(obj)}"
    return type(obj).__name__


def _names_in(obj: Any) -> tuple[str, ...]:
    if isinstance(obj, Mapping):
        return tuple(str(k) for k in obj)
    fields = _fields_of(obj)
    return tuple(fields) if fields else ()


def _template_position(frame: FrameType | None) -> tuple[int, str | None]:
    """The template line of the nearest frame running compiled template code."""
    while frame is not None:
        template = frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template):
            return template.get_corresponding_lineno(frame.f_lineno), template.filename
        frame = frame.f_back
    return 0, None


def _traceback_position(tb: TracebackType | None) -> tuple[int, str | None]:
    """The innermost template line in an exception's traceback."""
    found: tuple[int, str | None] = (0, None)
    while tb is not None:
        frame = tb.tb_frame
        template = frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template):
            found = (template.get_corresponding_lineno(tb.tb_lineno), template.filename)
        elif "__jinja_exception__" in frame.f_globals:  # Jinja's rewritten frames
            found = (tb.tb_lineno, frame.f_code.co_filename)
        tb = tb.tb_next
    return found


# --- the environment ------------------------------------------------------------------


class _RecipeLoader(jinja2.BaseLoader):
    """Loads partials relative to the recipe folder and refuses anything outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        relative = PurePosixPath(template.replace("\\", "/"))
        if relative.is_absolute() or template[1:3] == ":/" or ".." in relative.parts:
            raise TemplateOutsideRecipe(
                template,
                f"{template!r} is outside the recipe's folder; include files by a path "
                "relative to the recipe, without '..' or a leading '/'",
            )
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise TemplateOutsideRecipe(
                template, f"{template!r} resolves outside the recipe's folder (a symlink?)"
            )
        if not path.is_file():
            raise jinja2.TemplateNotFound(
                template,
                f"template {template!r} not found; paths are relative to the recipe's folder",
            )
        source = path.read_text(encoding="utf-8")
        seen = _file_stamp(path)
        # A partial gone or changed since it was read is loaded again (then found
        # missing, at its line), never answered from the cache nor a traceback.
        return source, str(path), lambda: seen is not None and _file_stamp(path) == seen


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time (in ns) and size, or None when it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


# Templates of an untrusted pull request run in CI's `validate`; repetition and
# powers are capped so `'a' * 10**10` fails fast instead of exhausting memory.
MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000


class _CodeGenerator(CodeGenerator):
    """Jinja's compiler, but ``a ~ b`` joins through the environment's ``concat``
    (:func:`budget.concat`, measured before joining): Jinja has no hook for ``~`` as it
    has for ``+``."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CodeGenerator
    # Also what joins a block's output: `{% set b %}...{% endset %}`, a macro's body.
    concat = staticmethod(concat)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # Every call a template makes is counted and checked (runner.prompt.budget),
        # and what it built is measured.
        check_call(__obj, (*args, *kwargs.values()))
        return sized(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":
            check_join(left, right)
        if operator == "%":
            check_percent(left, right)
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"the exponent {right} is too large for a template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_REPEAT
                ):
                    raise SecurityError(
                        f"repeating a value {count} times is too large for a template "
                        f"(at most {MAX_REPEAT:,} characters or items)"
                    )
        return sized(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # For our namespaces and JSON replies a key wins over a method name, so
        # `tasks.x.json.items` is the "items" field, not dict.items.
        if isinstance(obj, Namespace) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(
            f"templates cannot use {attribute!r} of a {type(obj).__name__} value: the sandbox "
            "blocks Python internals and changes to data; use the documented variables "
            "in docs/templates.md"
        )


def _to_json(value: Any, indent: int | None = None) -> str:
    """Plain JSON (no HTML escaping, unlike Jinja's tojson), for putting data in prompts."""
    return json.dumps(_plain(value), indent=indent, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    fields = _fields_of(value)
    if fields:
        return {name: _plain(getattr(value, name)) for name in fields}
    return value


def _fields_of(value: Any) -> Any:
    """The names a template sees on a view: its ``template_fields`` (fields and lazy
    properties), else its dataclass fields; None for anything else."""
    named = getattr(value, "template_fields", None)
    return named if named is not None else getattr(value, "__dataclass_fields__", None)


def _duration(seconds: float | int | None) -> str:
    """Audio duration in seconds as ``00:04:42``."""
    if seconds is None:
        return ""
    return helpers.format_timestamp(float(seconds) * 1000)


def _finalize(value: Any) -> Any:
    # A null (an empty CSV cell, a missing language) prints as nothing, not "None".
    return "" if value is None else value


def _strict(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that reports an undefined input by its name instead of a type error."""

    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            str(value)  # records the missing name with its template line
            return ""
        return function(value, *args, **kwargs)

    checked.__name__ = getattr(function, "__name__", "filter")
    checked.__doc__ = function.__doc__
    return checked


FILTERS: dict[str, Callable[..., Any]] = {
    "timestamp": helpers.format_timestamp,
    "duration": _duration,
    "dialogue": helpers.dialogue,
    "sentence_windows": helpers.sentence_windows,
    "estimate_tokens": helpers.estimate_tokens,
    "word_count": helpers.word_count,
    "truncate_tokens": helpers.truncate_tokens,
    "speaker_stats": helpers.speaker_stats,
    "to_json": _to_json,
    "tojson": _to_json,
}


@functools.lru_cache(maxsize=32)
def _shared_environment(
    recipe_dir: str,
) -> tuple[_Environment, dict[tuple[str, str], jinja2.Template]]:
    """The environment of templates in one recipe folder, and the templates compiled in
    it by (name, source). Nothing in it holds a render's state (missing names are kept
    in a context variable), and partials are reloaded when their file changes."""
    return _new_environment(Path(recipe_dir)), {}


def _new_environment(recipe_dir: Path) -> _Environment:
    env = _Environment(
        loader=_RecipeLoader(recipe_dir),
        undefined=_CollectingUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # Block tags ({% if %}, {% for %}) on their own line leave no blank line
        # or indent behind, so a prompt reads as it looks in the recipe.
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update({name: _strict(f) for name, f in FILTERS.items()})
    env.filters.update(bounded_filters(env.filters))
    return env


@functools.lru_cache(maxsize=512)
def _code(source: str) -> CodeType:
    """A template's compiled code. Every environment is made alike by
    :func:`_new_environment` (the same options, filters and finalize; only the folder
    its loader reads partials from differs, and partials are loaded when rendered), so a
    source compiles to the same code in each: parsing and generating it once per
    process, not once per recipe folder, saves about 3 ms a template (the suite makes
    hundreds of recipe folders; ``review`` and ``run`` over many recipes, dozens)."""
    return _compiler().compile(source)


@functools.cache
def _compiler() -> _Environment:
    # Its loader is never asked (partials are loaded by the engine's own environment as
    # they are rendered); "/" resolves wherever the process stands, even in a folder
    # since removed, where "." would not.
    return _new_environment(Path("/"))


class TemplateEngine:
    """Compiles and renders a recipe's templates. One per recipe folder."""

    def __init__(self, recipe_dir: Path) -> None:
        # `validate` and `run` (and `plan`) each make an engine for the same folder in
        # one process: they share its environment and compiled templates, so each
        # template is compiled once per process (about 3 ms each), not once per engine.
        self.env, self._compiled = _shared_environment(str(recipe_dir.resolve()))
        # Partials ({% include %}) are read afresh by each engine, as before the
        # environment was shared: a file rewritten with its old time (cp -p, rsync -a,
        # a one-second file system) is not answered from another engine's read.
        if self.env.cache is not None:
            self.env.cache.clear()

    # compile ------------------------------------------------------------------------

    def compile(self, template: Template) -> jinja2.Template:
        """Parse ``template``; a syntax error becomes a :class:`TemplateProblem` at its line."""
        key = (template.name, template.source)
        cached = self._compiled.get(key)
        if cached is not None:
            return cached
        try:
            code = _code(template.source)
            compiled = self.env.template_class.from_code(
                self.env, code, self.env.make_globals(None), None
            )
        except TemplateSyntaxError as exc:
            raise TemplateProblem([self._syntax_problem(template, exc)]) from None
        self._compiled[key] = compiled
        return compiled

    def _syntax_problem(self, template: Template, exc: TemplateSyntaxError) -> Diagnostic:
        if exc.filename:  # inside an included partial
            source = exc.source or ""
            advice = explain(source, exc, self.env)
            column = advice.offset + 1 if advice.offset is not None else 0
            return Diagnostic(display_path(exc.filename), advice.line, column, "", advice.message)
        advice = explain(template.source, exc, self.env)
        return self.locate(template, advice.line, advice.message, offset=advice.offset)

    # render ---------------------------------------------------------------------------

    def render(self, template: Template, context: Mapping[str, Any]) -> str:
        """Render, or raise :class:`TemplateProblem` naming every missing variable."""
        compiled = self.compile(template)
        missing: list[_Missing] = []
        token = _missing_names.set(missing)
        try:
            with bounded():
                text = capped_output(compiled.generate(context))
        except TemplateSyntaxError as exc:  # in an included file, compiled lazily
            raise TemplateProblem([self._syntax_problem(template, exc)]) from None
        except (
            SecurityError,
            UndefinedError,
            NoSpeakerLabelsUsed,
            TranscriptUsedAsText,
            jinja2.TemplateNotFound,
            jinja2.TemplateError,
            TypeError,
            ValueError,
            ArithmeticError,
            LookupError,
            RecursionError,  # a macro that calls itself
            MemoryError,  # a value too large to build: released as the render unwinds
        ) as exc:
            raise TemplateProblem([self._runtime_problem(template, exc)]) from None
        finally:
            _missing_names.reset(token)
        if missing:
            raise TemplateProblem(self._missing_problems(template, missing, context))
        return text

    def _runtime_problem(self, template: Template, exc: BaseException) -> Diagnostic:
        line, file = _traceback_position(exc.__traceback__)
        message = unknown_name(str(exc), self.env) or _runtime_message(exc)
        if file and file != "<template>":
            return Diagnostic(display_path(file), line, 0, "", message)
        return self.locate(template, line, message)

    def _missing_problems(
        self, template: Template, missing: list[_Missing], context: Mapping[str, Any]
    ) -> list[Diagnostic]:
        problems: dict[tuple[str, int], Diagnostic] = {}
        for entry in missing:
            message = _missing_message(entry, context)
            if entry.template_file and entry.template_file != "<template>":
                problem = Diagnostic(
                    display_path(entry.template_file), entry.template_line, 0, "", message
                )
            else:
                leaf = entry.name.rsplit(".", 1)[-1]
                problem = self.locate(template, entry.template_line, message, needle=leaf)
            problems.setdefault((entry.name, entry.template_line), problem)
        return list(problems.values())

    def locate(
        self,
        template: Template,
        template_line: int,
        message: str,
        needle: str | None = None,
        offset: int | None = None,
    ) -> Diagnostic:
        """``message`` at the recipe (or prompt file) line and column of ``template_line``:
        at ``offset`` in that line, or where ``needle`` first appears in it."""
        origin = template.origin
        line = origin.line_of(template_line)
        column = origin.column if template_line <= 1 else 0
        lines = template.source.splitlines()
        if offset is None and needle and 1 <= template_line <= len(lines):
            found = lines[template_line - 1].find(needle)
            offset = found if found >= 0 else None
        if offset is not None:
            # Block scalars keep their indent in every line, so the first line's
            # column is the left edge of all of them.
            column = origin.column + offset
        return Diagnostic(origin.file, line, column, origin.describe(), message)


def _runtime_message(exc: BaseException) -> str:
    if isinstance(exc, NoSpeakerLabelsUsed):
        return str(exc)
    if isinstance(exc, TranscriptUsedAsText):
        return f"{{{{ transcript }}}} is the whole transcript object; {exc}"
    if isinstance(exc, SecurityError):
        return str(exc)
    if isinstance(exc, TemplateOutsideRecipe | jinja2.TemplateNotFound):
        return str(exc.message or exc)
    if isinstance(exc, UndefinedError):
        return f"undefined value: {exc.message}"
    if isinstance(exc, RecursionError):
        return "the template nests too deeply (a macro that calls itself?); simplify it"
    if isinstance(exc, MemoryError):
        return "the template builds a value too large for memory; simplify it"
    return f"template failed: {type(exc).__name__}: {exc}"


_SEGMENTS = ("word", "utterance", "sentence", "paragraph")


def _missing_message(entry: _Missing, context: Mapping[str, Any]) -> str:
    name = entry.name
    leaf = name.rsplit(".", 1)[-1]
    if entry.parent == "tasks":
        return (
            f"{name} is not available to this task; add {leaf!r} to its `needs` "
            "(only tasks listed in needs can be used)"
        )
    if entry.parent is None and leaf == "gateway_transcript":
        return "{{ gateway_transcript }} needs `inject_transcript: true` on this task"
    plain_parent = entry.parent in (None, "transcript", *_SEGMENTS)
    prefix = "" if plain_parent else f"{entry.parent}."
    hint = suggest(leaf, entry.candidates, prefix)
    if entry.parent is None:
        hint = hint or suggest(leaf, context)
        known = ", ".join(sorted(context))
        return f"undefined variable {name!r}{hint} (available: {known})"
    if entry.parent == "transcript":
        return f"transcript has no field {leaf!r}{hint}"
    parent = entry.parent or ""
    if parent.startswith("tasks.") and parent.endswith(".json") and not entry.candidates:
        task = parent.split(".")[1]
        return (
            f"{parent} is empty: task {task!r} replies with plain text; give it a "
            "json_schema (or a json-repair step) to use fields of its reply"
        )
    if entry.parent in _SEGMENTS:
        return f"a transcript {entry.parent} has no field {leaf!r}{hint}"
    if entry.parent and entry.parent.startswith("list of "):
        return f"no item at index {leaf}: the list has {entry.parent[8:]} items"
    if entry.parent == "vars" and not entry.candidates:
        return f"undefined variable {name!r}; the recipe defines no vars (add a `vars:` block)"
    return f"undefined variable {name!r}{hint}"


# --- static analysis ----------------------------------------------------------------


def used_transcript_fields(engine: TemplateEngine, templates: Sequence[Template]) -> set[str]:
    """The ``transcript.<field>`` names the templates read (``"*"`` when passed whole).

    The executor fetches sentences and paragraphs only when this says a template
    uses them: each is an extra API call per item.
    """
    used: set[str] = set()
    for template in templates:
        try:
            tree = engine.env.parse(template.source)
        except TemplateSyntaxError:
            continue
        used |= _fields_in(tree)
    return used


def _fields_in(tree: nodes.Node) -> set[str]:
    used: set[str] = set()
    attribute_parents: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "transcript":
            attribute_parents.add(id(target))
            if isinstance(node, nodes.Getattr):
                used.add(node.attr)
            elif isinstance(node.arg, nodes.Const):
                used.add(str(node.arg.value))
            else:
                used.add("*")
    for name in tree.find_all(nodes.Name):
        if name.name == "transcript" and id(name) not in attribute_parents:
            used.add("*")  # passed whole to a filter or macro: assume it reads anything
    return used


def missing_message(
    name: str, parent: str | None, candidates: Sequence[str], context: Mapping[str, Any]
) -> str:
    """What ``render`` says of an undefined ``name``, for checks that find it without
    rendering (:mod:`runner.prompt.shapes`): one wording, whichever finds it."""
    entry = _Missing(name, parent, tuple(candidates), 0, None)
    return _missing_message(entry, context)
