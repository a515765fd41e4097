"""How late the event loop runs: the measure of a run that does too much on it.

Everything the runner sends and reads goes through one event loop. Work that holds
the loop (a large body decoded in place, a slow disk written from it) delays every
request and the reading of every 429, so the largest lag of a run is recorded in its
manifest (``loop_lag_max_ms``), where a slow run can be explained.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

TICK: Final = 0.05  # seconds between checks: 20 wake-ups a second cost nothing


class LoopLag:
    """Measures, while :meth:`watch` runs, how much later than asked the loop wakes."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self.max_seconds = 0.0

    async def watch(self) -> None:
        """Run until cancelled, keeping the largest lag seen."""
        while True:
            asked = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            self.max_seconds = max(self.max_seconds, time.monotonic() - asked)
