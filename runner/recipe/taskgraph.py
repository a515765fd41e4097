"""The task graph: which task needs which, the order tasks run in, and the cycles.

The one home of these rules: the recipe orders its tasks with it (run, plan, render),
``validate`` reports its unknown needs and cycles, and the executor starts each task
once the tasks it needs are done.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


class TaskGraph:
    """Tasks by name, in recipe order, each with the names of the tasks it needs."""

    def __init__(self, needs: Mapping[str, Sequence[str]]) -> None:
        self._needs = needs

    def needs(self, name: str) -> Sequence[str]:
        return self._needs[name]

    def order(self) -> list[str]:
        """Every task after the ones it needs; otherwise in recipe order. Tasks in a
        cycle (``validate`` reports it) keep their recipe order, and so does the rest."""
        done: list[str] = []
        pending = list(self._needs)
        while pending:
            ready = [n for n in pending if all(d in done for d in self._needs[n])]
            if not ready:
                ready = pending[:1]
            done.append(ready[0])
            pending.remove(ready[0])
        return done

    def unknown_needs(self) -> Iterator[tuple[str, int, str]]:
        """Each need that names no task: the task, the need's place, the name."""
        for name, needs in self._needs.items():
            for index, need in enumerate(needs):
                if need not in self._needs:
                    yield name, index, need

    def failed_needs(self, name: str, results: Mapping[str, object | None]) -> list[str]:
        """The tasks ``name`` needs that have no result (they failed or did not run)."""
        return [need for need in self._needs[name] if results.get(need) is None]

    def cycles(self) -> list[list[str]]:
        """Each cycle once, starting at its first task in recipe order."""
        graph = self._needs
        order = {name: i for i, name in enumerate(graph)}
        cycles: list[list[str]] = []
        seen: set[frozenset[str]] = set()
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(node: str, stack: list[str]) -> None:
            state[node] = 1
            stack.append(node)
            for nxt in graph.get(node, ()):
                if nxt not in graph:
                    continue
                if state.get(nxt) == 1:
                    cycle = stack[stack.index(nxt) :]
                    key = frozenset(cycle)
                    if key not in seen:
                        seen.add(key)
                        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                        cycles.append(cycle[start:] + cycle[:start])
                elif state.get(nxt) is None:
                    visit(nxt, stack)
            stack.pop()
            state[node] = 2

        for name in graph:
            if name not in state:
                visit(name, [])
        return cycles
