"""The runner's HTTP client set up for tests against tests/fakeapi.py.

tests/conftest.py builds the ``http`` fixture with :func:`config_for`; a test that needs
other limits, retries, timeouts or a wrong key builds its own client with it.
"""

from __future__ import annotations

import random

from runner.api.config import ClientConfig, Limits, RetryPolicy, Timeouts

KEY = "sk-live-7c1e9b0f-do-not-leak"  # shaped like a real key, so a leak of it is noticed


def config_for(
    base_url: str,
    *,
    key: str = KEY,
    limits: Limits | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
) -> ClientConfig:
    """Fast retries with seeded jitter, short timeouts: the policy, at test speed."""
    return ClientConfig(
        api_key=key,
        base_url=base_url,
        gateway_url=f"{base_url}/v1",
        timeouts=timeouts or Timeouts(connect=2, read=2, llm=2, upload=10),
        limits=limits or Limits(),
        retry=retry or RetryPolicy(base_delay=0.01, max_delay=0.05, rng=random.Random(7)),
    )
