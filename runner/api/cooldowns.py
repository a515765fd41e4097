"""Cooldowns: "nobody calls this family (or this Gateway model) before T"."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from runner.api.families import Family

# (family, model): Gateway limits are per model (§8); every /v2 family shares one gate,
# "v2", since AssemblyAI's REST rate limit is per account, not per endpoint.
GateKey = tuple[str, str | None]
V2_FAMILIES: frozenset[Family] = frozenset({"uploads", "transcriptions", "polls"})


def gate_of(family: Family, model: str | None) -> GateKey:
    """The cooldown a request waits on: the account's /v2 budget, or a Gateway model."""
    return ("v2", None) if family in V2_FAMILIES else (family, model)


Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class Cooldowns:
    """Per (family, model) times before which no request may be sent.

    Waiters re-check after sleeping, because another response may have extended the
    pause meanwhile; each adds a little jitter so a crowd does not stampede at once.
    """

    def __init__(self, clock: Clock, sleep: Sleep, rng: random.Random) -> None:
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._until: dict[GateKey, float] = {}

    def pause(self, key: GateKey, seconds: float) -> None:
        """Close the gate for ``seconds`` from now (never shortens an existing pause)."""
        until = self._clock() + seconds
        if until > self._until.get(key, 0.0):
            self._until[key] = until

    def remaining(self, key: GateKey) -> float:
        """Seconds until the gate opens; 0 when open."""
        return max(0.0, self._until.get(key, 0.0) - self._clock())

    async def wait(self, key: GateKey) -> None:
        """Return once the gate for ``key`` is open."""
        while (left := self.remaining(key)) > 0:
            await self._sleep(left + self._rng.uniform(0.0, min(0.05 * left, 1.0)))

    def snapshot(self) -> dict[str, float]:
        """Open pauses as ``"family"`` or ``"family:model"`` → seconds left."""
        now = self._clock()
        return {
            f"{family}:{model}" if model else family: round(until - now, 3)
            for (family, model), until in self._until.items()
            if until > now
        }
