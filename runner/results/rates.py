"""Pass rates: how many items pass each check, and the gate of a task's ``pass_rate``.

A check's rate is the items that passed it over the items it ran on. A task with
``pass_rate: 0.9`` gates on its items: those that pass every check that counts
(not a ``severity: warn`` one) over those checked; below the rate, the run fails and
says which checks brought it down, with their rates. Counted from the item records
alone, so a run, a ``merge`` of its shards and the reports all count alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class _Check(Protocol):
    expect: str
    passed: bool
    severity: str
    line: int

    @property
    def failing(self) -> bool: ...


class _Task(Protocol):
    task: str
    pass_rate: float | None

    @property
    def expectations(self) -> Sequence[_Check]: ...


@dataclass
class CheckRate:
    """One check of one task, over the items it ran on."""

    recipe: str
    task: str
    check: str
    severity: str
    line: int
    passed: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 1.0

    def words(self) -> str:
        """``judge '…': 8 of 10 items (80%)``."""
        return f"{self.check}: {self.passed} of {self.total} items ({percent(self.rate)})"


@dataclass
class TaskGate:
    """A task's ``pass_rate`` and the items that pass all its checks."""

    recipe: str
    task: str
    pass_rate: float
    passed: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 1.0

    @property
    def ok(self) -> bool:
        return self.rate >= self.pass_rate


@dataclass(frozen=True)
class Shortfall:
    """A gate that failed, with the checks under its rate: what the run says."""

    gate: TaskGate
    checks: tuple[CheckRate, ...]

    def words(self) -> str:
        gate = self.gate
        named = "; ".join(c.words() for c in self.checks)
        return (
            f"{gate.recipe}/{gate.task}: {gate.passed} of {gate.total} items pass its checks "
            f"({percent(gate.rate)}), below pass_rate {percent(gate.pass_rate)}"
            + (f": {named}" if named else "")
        )


@dataclass
class CheckRates:
    """Each check's rate and each task's gate, counted as item records are added."""

    checks: dict[tuple[str, str, str], CheckRate] = field(default_factory=dict)
    gates: dict[tuple[str, str], TaskGate] = field(default_factory=dict)

    def add(self, recipe: str, task: _Task) -> None:
        if not task.expectations:
            return
        for check in task.expectations:
            key = (recipe, task.task, check.expect)
            rate = self.checks.setdefault(
                key, CheckRate(recipe, task.task, check.expect, check.severity, check.line)
            )
            rate.total += 1
            rate.passed += check.passed
        if task.pass_rate is not None:
            gate = self.gates.setdefault(
                (recipe, task.task), TaskGate(recipe, task.task, task.pass_rate)
            )
            gate.total += 1
            gate.passed += not any(c.failing for c in task.expectations)

    def of_task(self, recipe: str, task: str) -> list[CheckRate]:
        return [c for (r, t, _), c in self.checks.items() if (r, t) == (recipe, task)]

    def below(self) -> list[Shortfall]:
        """The gates that failed, each with its failing checks under the pass rate."""
        found = []
        for gate in self.gates.values():
            if not gate.ok:
                checks = tuple(
                    c
                    for c in self.of_task(gate.recipe, gate.task)
                    if c.severity != "warn" and c.rate < gate.pass_rate
                )
                found.append(Shortfall(gate, checks))
        return found

    def as_json(self) -> list[dict[str, Any]]:
        """run.json's ``summary.checks``: one row per check, its task's gate beside it."""
        rows = []
        for (recipe, task, _), check in self.checks.items():
            gate = self.gates.get((recipe, task))
            rows.append(
                {
                    "recipe": recipe,
                    "task": task,
                    "check": check.check,
                    "line": check.line,
                    "severity": check.severity,
                    "passed": check.passed,
                    "total": check.total,
                    "rate": round(check.rate, 4),
                    "pass_rate": gate.pass_rate if gate is not None else None,
                    "task_rate": round(gate.rate, 4) if gate is not None else None,
                }
            )
        return rows


def percent(rate: float) -> str:
    """0.9 as ``90%``; 0.875 as ``87.5%``."""
    return f"{rate * 100:.1f}".rstrip("0").rstrip(".") + "%"
