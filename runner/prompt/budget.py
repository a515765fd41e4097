"""How much one template render may do: output size, calls, time, and value sizes.

Recipes arrive in pull requests, and CI runs ``validate`` on them before a person
reads them, so a template is untrusted code. Jinja's sandbox stops it from reaching
Python internals; these bounds stop it from exhausting the machine instead:

* the rendered text stops at ``MAX_RENDERED`` characters (far above any model's
  context, so no real prompt meets it);
* a render may make ``MAX_CALLS`` calls (method calls, ``range``, ``lipsum``...) and
  take ``MAX_SECONDS``; on the main thread a timer also stops loops that call nothing;
* a call or filter that would build a huge value (``center(10**9)``, a ``replace`` that
  multiplies a text, ``'%*d' % (10**9, 1)``) is refused before it allocates;
* no text or list a template builds may pass ``MAX_RENDERED`` either: ``a ~ b`` and
  ``a + b`` are measured before they are joined, and what a call or a filter returns
  (``'{0}{0}'.format(s)``, ``s.join(...)``) as soon as it is made, so a text doubled
  in a loop stops at twice the bound, not at the machine's memory.

Each limit raises :class:`jinja2.exceptions.SecurityError`, which the template engine
reports as a located :class:`~runner.errors.TemplateProblem` (exit 3 in ``validate``).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from jinja2.exceptions import SecurityError

MAX_RENDERED: Final = 5_000_000  # characters of one rendered template
MAX_CALLS: Final = 1_000_000  # calls made by one render
MAX_SECONDS: Final = 10.0  # wall time of one render
MAX_SIZE: Final = 100_000  # a width, count or repeat a template may ask for
MAX_LIPSUM: Final = 100  # paragraphs of lipsum()

# A width or precision with more digits than MAX_SIZE has: `%1000000d`, `{:>1000000}`.
_DIGITS = rf"\d{{{len(str(MAX_SIZE)) + 1},}}"
_HUGE_PERCENT = re.compile(rf"%[-#0 +]*(?:{_DIGITS}|\*?\.{_DIGITS})")
_HUGE_BRACES = re.compile(rf"\{{[^{{}}]*:[^{{}}]*{_DIGITS}[^{{}}]*\}}")
_WIDTH_METHODS: Final = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


@dataclass
class _Budget:
    deadline: float
    calls: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


class RenderTooCostly(SecurityError):
    """A render went past one of the bounds above."""


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Render inside this: the call count and the clock start, and on the main thread a
    timer interrupts a render that runs past ``MAX_SECONDS`` without calling anything."""
    token = _budget.set(_Budget(time.monotonic() + MAX_SECONDS))
    try:
        with _alarm():
            yield
    finally:
        _budget.reset(token)


def count_call() -> None:
    """One more call; past the budget or the deadline the render stops."""
    budget = _budget.get()
    if budget is None:
        return
    budget.calls += 1
    if budget.calls > MAX_CALLS:
        raise RenderTooCostly(f"the template makes more than {MAX_CALLS:,} calls; simplify it")
    if budget.calls % 1000 == 0 and time.monotonic() > budget.deadline:
        raise _too_slow()


def sized(value: Any) -> Any:
    """``value``, unless it is a text or list larger than any prompt can be."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_RENDERED:
        raise _too_large(type(value).__name__)
    return value


def check_join(left: Any, right: Any) -> None:
    """``a + b`` of two texts or lists: refused before it is built when too large."""
    joinable = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if joinable and len(left) + len(right) > MAX_RENDERED:
        raise _too_large(type(left).__name__)


def concat(values: Iterable[Any]) -> str:
    """``a ~ b ~ c``: the texts joined, refused before joining when too large."""
    texts = [str(value) for value in values]
    if sum(len(text) for text in texts) > MAX_RENDERED:
        raise _too_large("str")
    return "".join(texts)


def capped_output(chunks: Iterable[str]) -> str:
    """The rendered text, stopped at ``MAX_RENDERED`` characters."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RENDERED:
            raise RenderTooCostly(
                f"the template renders more than {MAX_RENDERED:,} characters; no model reads "
                "that much (truncate_tokens shortens a transcript to a budget)"
            )
        parts.append(chunk)
    return "".join(parts)


def check_call(obj: Any, args: tuple[Any, ...]) -> None:
    """Refuse a call that would build a huge value, before it runs."""
    count_call()
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    name = getattr(target, "__name__", "")
    owner = getattr(target, "__self__", None)
    if isinstance(owner, str) and name in _WIDTH_METHODS:
        _refuse_huge(name, args)
    if isinstance(owner, str) and name == "format" and _HUGE_BRACES.search(owner):
        raise RenderTooCostly(f"a format width over {MAX_SIZE:,} is too large for a template")
    if name == "generate_lorem_ipsum" and args and _number(args[0]) > MAX_LIPSUM:
        raise RenderTooCostly(f"lipsum() makes at most {MAX_LIPSUM} paragraphs in a template")


def check_percent(left: Any, right: Any) -> None:
    """``'%*d' % (10**9, 1)``: a %-format with a huge width or argument is refused."""
    if not isinstance(left, str):
        return
    values = right if isinstance(right, tuple) else (right,)
    widths = "*" in left and any(_number(v) > MAX_SIZE for v in values)
    if _HUGE_PERCENT.search(left) or widths:
        raise RenderTooCostly(f"a format width over {MAX_SIZE:,} is too large for a template")


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can multiply a text, wrapped to refuse that first; every
    filter's result is measured (:func:`sized`)."""
    wrapped = dict(filters)
    for name in ("center", "indent", "wordwrap"):
        if name in filters:
            wrapped[name] = _width_checked(name, filters[name])
    if "replace" in filters:
        wrapped["replace"] = _replace_checked(filters["replace"])
    if "join" in filters:
        wrapped["join"] = _join_checked(filters["join"])
    if "format" in filters:
        wrapped["format"] = _format_checked(filters["format"])
    return {name: _result_sized(f) for name, f in wrapped.items()}


def _result_sized(original: Callable[..., Any]) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        return sized(original(*args, **kwargs))

    return _named(checked, original)


# --- the wrappers ------------------------------------------------------------------------


def _width_checked(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        _refuse_huge(name, (*args[1:], *kwargs.values()))
        return original(*args, **kwargs)

    return _named(checked, original)


def _replace_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def checked(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        text, before, after = str(value), str(old), str(new)
        grows = max(0, len(after) - len(before))
        times = text.count(before) if before else len(text) + 1
        if count is not None and _number(count) >= 0:
            times = min(times, _number(count))
        if len(text) + grows * times > MAX_RENDERED:
            raise RenderTooCostly("this replace() would build a text too large for a template")
        return original(eval_ctx, value, old, new, count)

    return _named(checked, original)


def _join_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def checked(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        items = list(value) if not isinstance(value, str) else [value]
        size = sum(len(str(item)) for item in items) + len(str(d)) * max(0, len(items) - 1)
        if size > MAX_RENDERED:
            raise RenderTooCostly("this join() would build a text too large for a template")
        return original(eval_ctx, items, d, attribute)

    return _named(checked, original)


def _format_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_percent(str(value), args)
        return original(value, *args, **kwargs)

    return _named(checked, original)


def _named(checked: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    """Keep the attributes Jinja reads (``jinja_pass_arg`` for eval-context filters)."""
    checked.__name__ = getattr(original, "__name__", "filter")
    checked.__doc__ = original.__doc__
    if hasattr(original, "jinja_pass_arg"):
        checked.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


def _refuse_huge(name: str, values: Iterable[Any]) -> None:
    if any(_number(v) > MAX_SIZE for v in values):
        raise RenderTooCostly(f"{name}() with a size over {MAX_SIZE:,} is too large for a template")


def _number(value: Any) -> int:
    """An int argument's size; anything else counts as small."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _too_large(kind: str) -> RenderTooCostly:
    what = "list" if kind in ("list", "tuple") else "text"
    unit = "items" if what == "list" else "characters"
    return RenderTooCostly(
        f"the template builds a {what} of more than {MAX_RENDERED:,} {unit} (a value "
        "joined to itself in a loop?); no model reads that much"
    )


def _too_slow() -> RenderTooCostly:
    return RenderTooCostly(
        f"the template took more than {MAX_SECONDS:g} s to render; a loop over a loop is "
        "the usual cause"
    )


@contextlib.contextmanager
def _alarm() -> Iterator[None]:
    """A timer that interrupts a render on the main thread (signals exist only there)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        if _budget.get() is not None:
            raise _too_slow()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, MAX_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
