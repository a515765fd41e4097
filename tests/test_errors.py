"""The exception tree drawn in ``runner/errors.py``'s docstring is the real one: every
class under ``RunnerError`` appears once, under its real parent, with its real exit code."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import runner.errors
from runner.errors import RunnerError

# One row of the drawing: the branch marks, a class name, and its exit code, if shown.
ROW = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)(?:\s+(?P<code>\d+))?(?:\s|$)")


@dataclass(frozen=True)
class Drawn:
    name: str
    parent: str | None
    code: int | None


def drawn_tree() -> list[Drawn]:
    """The rows of the drawing, each with the class it hangs from (by indentation)."""
    doc = runner.errors.__doc__ or ""
    block = doc.split("the whole tree::", 1)[1].split("\n\n", 2)[1]
    rows: list[Drawn] = []
    parents: dict[int, str] = {}  # depth -> the last class drawn at that depth
    for line in block.splitlines():
        match = ROW.match(line.strip("\n")[4:])  # the block is indented by four spaces
        assert match, f"not a row of the tree: {line!r}"
        depth = len(match["indent"]) // 4
        parents[depth] = match["name"]
        code = int(match["code"]) if match["code"] else None
        rows.append(Drawn(match["name"], parents.get(depth - 1) if depth else None, code))
    return rows


def real_tree() -> dict[str, type[RunnerError]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(runner.errors, inspect.isclass)
        if issubclass(cls, RunnerError) and cls.__module__ == runner.errors.__name__
    }


def test_the_drawing_parses_into_the_whole_tree() -> None:
    rows = drawn_tree()
    assert rows[0] == Drawn("RunnerError", None, 1)
    assert len(rows) > 10  # the parser found the rows, not just the root


def test_every_class_is_drawn_once() -> None:
    names = [row.name for row in drawn_tree()]
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, f"drawn more than once: {sorted(duplicates)}"
    real = set(real_tree())
    assert set(names) == real, (
        f"missing from the drawing: {sorted(real - set(names))}; "
        f"drawn but not defined: {sorted(set(names) - real)}"
    )


def test_every_class_is_drawn_under_its_real_parent_with_its_exit_code() -> None:
    classes = real_tree()
    for row in drawn_tree():
        cls = classes[row.name]
        if row.parent is None:
            assert cls is RunnerError
        else:
            assert cls.__base__.__name__ == row.parent, (
                f"{row.name} is drawn under {row.parent}, but derives from {cls.__base__.__name__}"
            )
        if row.code is not None:
            assert cls.exit_code == row.code, f"{row.name}: drawn {row.code}, is {cls.exit_code}"
