"""What ``review`` found, and its two files: ``review.md`` (GitHub-flavoured, for a pull
request's comment, under GitHub's 65,536 characters) and ``review.json``.

Plain data in, text out: the command compares, this module only says it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKDOWN_FILE = "review.md"
JSON_FILE = "review.json"
HTML_FILE = "review.html"
# GitHub refuses a comment longer than this; outputs are folded to stay under it.
COMMENT_LIMIT = 65_536
_RESERVE = 2_000  # room for the closing lines and the note that outputs were shortened

CHANGED, AFFECTED, UNCHANGED, ADDED = "changed", "affected", "unchanged", "added"


@dataclass(frozen=True)
class Expectation:
    expect: str  # what was checked, as run.json says it
    passed: bool
    message: str = ""
    failing: bool = True  # False: a `severity: warn` check, whose failure fails nothing


@dataclass(frozen=True)
class Outcome:
    """One task's result for one item on one side; ``status`` is run.json's, or
    ``"not compared"`` (not in the cache under --offline, or not run)."""

    status: str
    text: str | None = None
    error: str | None = None
    expectations: tuple[Expectation, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached: bool = False
    cost_usd: float | None = None  # run.json's: 0 when cached, None when the price is unknown

    @property
    def compared(self) -> bool:
        return self.status != NOT_COMPARED

    @property
    def passed(self) -> bool:
        return self.status == "ok" and all(e.passed or not e.failing for e in self.expectations)


NOT_COMPARED = "not compared"


@dataclass(frozen=True)
class ItemComparison:
    item: str
    base: Outcome
    head: Outcome

    @property
    def regressed(self) -> bool:
        """Passed on base (the task and each expectation), fails on head."""
        return (
            self.base.compared
            and self.head.compared
            and self.base.passed
            and not (self.head.passed)
        )

    @property
    def differs(self) -> bool:
        return (self.base.text, self.base.passed) != (self.head.text, self.head.passed)

    def regressions(self) -> list[str]:
        """What failed on head, in words: the task's error or each failed expectation."""
        if not self.regressed:
            return []
        failed = [
            f"expect {e.expect}: {e.message}"
            for e in self.head.expectations
            if not e.passed and e.failing
        ]
        return failed or [f"the task {self.head.status}: {self.head.error or 'no output'}"]


@dataclass(frozen=True)
class Rate:
    """How many of the sample's items passed a check on one side."""

    passed: int = 0
    total: int = 0

    def words(self) -> str:
        if not self.total:
            return "—"
        return f"{self.passed} of {self.total} ({self.passed / self.total:.0%})"

    def as_json(self) -> dict[str, Any]:
        rate = round(self.passed / self.total, 4) if self.total else None
        return {"passed": self.passed, "total": self.total, "rate": rate}


@dataclass(frozen=True)
class TaskComparison:
    task: str
    status: str  # changed, affected (needs a changed task), added
    why: str  # "prompt changed", "needs summary", "expectations changed"
    items: tuple[ItemComparison, ...]

    def rates(self) -> list[tuple[str, Rate, Rate]]:
        """Each check's pass rate over the compared items, on base and on head."""
        names: dict[str, None] = {}
        for item in self.items:
            for side in (item.base, item.head):
                names.update(dict.fromkeys(e.expect for e in side.expectations))
        return [
            (name, _rate(self.items, name, True), _rate(self.items, name, False)) for name in names
        ]


def _rate(items: tuple[ItemComparison, ...], name: str, base: bool) -> Rate:
    found = [
        e
        for item in items
        for e in (item.base if base else item.head).expectations
        if e.expect == name and (item.base if base else item.head).compared
    ]
    return Rate(sum(e.passed for e in found), len(found))


@dataclass
class RecipeReview:
    recipe: str
    file: str
    tasks: list[TaskComparison] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # tasks only base has
    items: list[str] = field(default_factory=list)  # the sample compared
    skipped: list[str] = field(default_factory=list)  # no transcript known, not transcribed
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # item → (kind, source)
    base_text: str = ""  # the recipe file's text on each side ("" when base has none)
    head_text: str = ""


@dataclass
class Review:
    base: str  # e.g. "base (HEAD~1)"
    head: str
    recipes: list[RecipeReview] = field(default_factory=list)
    calls_sent: int = 0
    offline: bool = False

    def regressions(self) -> list[str]:
        """``recipe/task/item: what`` for everything that passed on base and fails on head."""
        found = []
        for recipe in self.recipes:
            for task in recipe.tasks:
                for item in task.items:
                    for what in item.regressions():
                        found.append(f"{recipe.recipe}/{task.task}/{item.item}: {what}")
        return found

    def changes(self) -> int:
        """How many (task, item) outputs differ between base and head."""
        return sum(
            1
            for recipe in self.recipes
            for task in recipe.tasks
            for item in task.items
            if item.base.compared and item.head.compared and item.differs
        )

    def not_compared(self) -> list[str]:
        return [
            f"{recipe.recipe}/{task.task}/{item.item}"
            for recipe in self.recipes
            for task in recipe.tasks
            for item in task.items
            if not (item.base.compared and item.head.compared)
        ]


def write(review: Review, folder: Path) -> tuple[Path, Path]:
    """review.md and review.json in ``folder`` (review.html: :mod:`.review_html`)."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / MARKDOWN_FILE
    markdown.write_text(review_markdown(review), encoding="utf-8")
    data = folder / JSON_FILE
    data.write_text(json.dumps(review_json(review), indent=2) + "\n", encoding="utf-8")
    return markdown, data


def review_json(review: Review) -> dict[str, Any]:
    def outcome(side: Outcome) -> dict[str, Any]:
        return {
            "status": side.status,
            "text": side.text,
            "error": side.error,
            "cached": side.cached,
            "input_tokens": side.input_tokens,
            "output_tokens": side.output_tokens,
            "cost_usd": side.cost_usd,
            "expectations": [
                {"expect": e.expect, "passed": e.passed, "message": e.message}
                for e in side.expectations
            ],
        }

    return {
        "base": review.base,
        "head": review.head,
        "offline": review.offline,
        "llm_calls_sent": review.calls_sent,
        "regressions": review.regressions(),
        "not_compared": review.not_compared(),
        "recipes": [
            {
                "recipe": recipe.recipe,
                "file": recipe.file,
                "items": recipe.items,
                "skipped_items": recipe.skipped,
                "unchanged_tasks": recipe.unchanged,
                "removed_tasks": recipe.removed,
                "tasks": [
                    {
                        "task": task.task,
                        "status": task.status,
                        "why": task.why,
                        "rates": [
                            {"check": name, "base": b.as_json(), "head": h.as_json()}
                            for name, b, h in task.rates()
                        ],
                        "items": [
                            {
                                "item": item.item,
                                "regressed": item.regressed,
                                "base": outcome(item.base),
                                "head": outcome(item.head),
                            }
                            for item in task.items
                        ],
                    }
                    for task in recipe.tasks
                ],
            }
            for recipe in review.recipes
        ],
    }


def review_markdown(review: Review) -> str:
    """The review as a pull request comment; each output folded to fit the limit."""
    outputs = sum(len(t.items) * 2 for r in review.recipes for t in r.tasks) or 1
    lines = _markdown(review, fold=None)
    text = "\n".join(lines) + "\n"
    if len(text) <= COMMENT_LIMIT:
        return text
    # Share what is left after the frame among the outputs, and cut each to its share.
    frame = len("\n".join(_markdown(review, fold=0)))
    share = max(200, (COMMENT_LIMIT - _RESERVE - frame) // outputs)
    text = "\n".join(_markdown(review, fold=share)) + "\n"
    return text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 100] + "\n\n…(cut)\n"


def _markdown(review: Review, fold: int | None) -> list[str]:
    regressions = review.regressions()
    lines = [f"## transcript-runner review: {review.base} → {review.head}", ""]
    lines += [
        f"Side by side, with each change marked and the recipe's diff: `{HTML_FILE}`, "
        "beside this file.",
        "",
    ]
    if regressions:
        lines += ["**Regressions** (passed on base, fail on head):", ""]
        lines += [f"- `{r}`" for r in regressions] + [""]
    lines.append(
        f"{review.changes()} output(s) changed; {review.calls_sent} LLM call(s) sent"
        + (" (--offline: only the cache was compared)" if review.offline else "")
        + "."
    )
    if missing := review.not_compared():
        lines += ["", "Not compared (no cached reply, or the task did not run): "]
        lines += [f"- `{m}`" for m in missing]
    for recipe in review.recipes:
        lines += ["", f"### {recipe.recipe} (`{recipe.file}`)", ""]
        lines.append(f"Items compared: {', '.join(recipe.items) or 'none'}.")
        if recipe.skipped:
            lines.append(
                f"Skipped (no transcript yet; --transcribe to transcribe them): "
                f"{', '.join(recipe.skipped)}."
            )
        if recipe.unchanged:
            lines.append(f"Unchanged tasks: {', '.join(recipe.unchanged)}.")
        if recipe.removed:
            lines.append(f"Removed tasks: {', '.join(recipe.removed)}.")
        for task in recipe.tasks:
            lines += ["", f"#### `{task.task}`: {task.status} ({task.why})"]
            lines += _rates_markdown(task)
            for item in task.items:
                lines += _item_markdown(item, fold)
    return lines


def _item_markdown(item: ItemComparison, fold: int | None) -> list[str]:
    mark = " ❌ regressed" if item.regressed else (" (same)" if not item.differs else "")
    lines = ["", f"**{item.item}**{mark}", ""]
    lines += _expectations_markdown(item)
    for name, side in (("base", item.base), ("head", item.head)):
        tokens = (
            f", {side.input_tokens} in / {side.output_tokens} out tokens"
            if side.input_tokens is not None
            else ""
        )
        cached = ", cached" if side.cached else ""
        lines += [
            f"<details><summary>{name}: {side.status}{cached}{tokens}</summary>",
            "",
            _fenced(side.text if side.text is not None else side.error or "(no output)", fold),
            "",
            "</details>",
        ]
    return lines


def _rates_markdown(task: TaskComparison) -> list[str]:
    """Each check's pass rate over the sample, before and after."""
    rates = task.rates()
    if not rates:
        return []
    lines = ["", "| check | pass rate on base | on head |", "|---|---|---|"]
    for name, base, head in rates:
        cell = name.replace("|", "\\|")
        lines.append(f"| `{cell}` | {base.words()} | {head.words()} |")
    return lines


def _expectations_markdown(item: ItemComparison) -> list[str]:
    base = {e.expect: e for e in item.base.expectations}
    head = {e.expect: e for e in item.head.expectations}
    if not base and not head:
        return []

    def word(e: Expectation | None) -> str:
        return "—" if e is None else ("pass" if e.passed else f"fail ({e.message})")

    lines = ["| expectation | base | head |", "|---|---|---|"]
    for expect in [*base, *(e for e in head if e not in base)]:
        cell = expect.replace("|", "\\|")
        lines.append(f"| `{cell}` | {word(base.get(expect))} | {word(head.get(expect))} |")
    return [*lines, ""]


def _fenced(text: str, fold: int | None) -> str:
    if fold is not None and len(text) > fold:
        text = text[:fold] + f"\n…({len(text) - fold} more characters in {HTML_FILE})"
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text.rstrip()}\n{fence}"
