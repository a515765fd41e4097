"""aiohttp clients for AssemblyAI: transcripts (REST v2), the LLM Gateway, LeMUR.

Retry, rate-limit and timeout policy lives in one place, :mod:`runner.api.http`;
the clients describe endpoints and parse replies. Only this package imports aiohttp.
"""
