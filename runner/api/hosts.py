"""AssemblyAI's hosts by region (notes section 1), apart from the clients so that offline
commands (``validate --online`` reads the public model catalog) need no aiohttp."""

from __future__ import annotations

US_BASE_URL = "https://api.assemblyai.com"
US_GATEWAY_URL = "https://llm-gateway.assemblyai.com/v1"
EU_BASE_URL = "https://api.eu.assemblyai.com"
EU_GATEWAY_URL = "https://llm-gateway.eu.assemblyai.com/v1"

# region -> (REST base URL, LLM Gateway URL)
REGIONS = {"us": (US_BASE_URL, US_GATEWAY_URL), "eu": (EU_BASE_URL, EU_GATEWAY_URL)}
