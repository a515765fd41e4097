"""AssemblyAI's hosts by region (notes section 1), apart from the clients so that offline
commands (``validate --online`` reads the public model catalog) need no aiohttp."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

US_BASE_URL = "https://api.assemblyai.com"
US_GATEWAY_URL = "https://llm-gateway.assemblyai.com/v1"
EU_BASE_URL = "https://api.eu.assemblyai.com"
EU_GATEWAY_URL = "https://llm-gateway.eu.assemblyai.com/v1"

# region -> (REST base URL, LLM Gateway URL)
REGIONS = {"us": (US_BASE_URL, US_GATEWAY_URL), "eu": (EU_BASE_URL, EU_GATEWAY_URL)}


def rest_region(region: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """The region a run's REST requests (uploads, transcripts, LeMUR) go to, and what
    says so when it is not ``--region``: ``ASSEMBLYAI_BASE_URL`` wins over ``--region``
    (as in :meth:`ClientConfig.from_env`) when it names one of AssemblyAI's own hosts;
    another host (a proxy, a test server) leaves the choice to ``--region``."""
    chosen = (region or "us").strip().lower()
    url = (environ.get("ASSEMBLYAI_BASE_URL") or "").strip().rstrip("/")
    host = urlsplit(url).hostname if url else None
    for name, (base, _gateway) in REGIONS.items():
        if host is not None and host == urlsplit(base).hostname:
            return name, "" if name == chosen else f"ASSEMBLYAI_BASE_URL is {url}"
    return chosen, ""
