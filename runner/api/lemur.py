"""LeMUR's task endpoint, ``POST /lemur/v3/generate/task`` (notes §7; seed 000).

Deprecated by AssemblyAI in favour of the LLM Gateway, kept because recipes may still
ask for it (``api: lemur``). Errors use the ``/v2`` shape ``{"error": "..."}``. Like a
Gateway call, a task is sent as idempotent: a duplicate costs tokens, not a transcript.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from runner.api.config import ClientConfig
from runner.api.http import HttpClient
from runner.api.types import Completion, Usage
from runner.errors import ApiError

ROUTE: Final = "POST /lemur/v3/generate/task"


class LemurClient:
    """``task(body)`` → :class:`Completion` from ``{request_id, response, usage}``."""

    def __init__(self, http: HttpClient, config: ClientConfig | None = None) -> None:
        self._http = http
        self._config = config or http.config

    async def task(self, body: Mapping[str, Any]) -> Completion:
        """Run a LeMUR task; ``model`` is the request's ``final_model`` (LeMUR names none)."""
        response = await self._http.request(
            "POST",
            f"{self._config.base_url}/lemur/v3/generate/task",
            family="lemur",
            json=dict(body),
            idempotent=True,
            expect_json=True,
        )
        data = response.json()
        if not isinstance(data, dict):
            raise ApiError(f"{ROUTE} answered with JSON that is not an object", endpoint=ROUTE)
        reply = data.get("response")
        request_id = data.get("request_id")
        model = body.get("final_model")
        usage = data.get("usage")
        return Completion(
            content=reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False),
            model=model if isinstance(model, str) else None,
            usage=Usage.from_api(usage if isinstance(usage, dict) else None),
            request_id=request_id if isinstance(request_id, str) else None,
            finish_reason=None,
            stats=response.stats,
        )
