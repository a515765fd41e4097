"""The kinds of request that get their own limit: one list for the command line's
``--limit``, a recipe's ``limits:``, the client's slots and the progress counts.

Kept apart and light, so the command line names them in its help without importing
the HTTP stack.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# uploads: local audio sent to AssemblyAI; transcriptions: POST /v2/transcript;
# polls: every other GET on /v2/transcript; llm: the LLM Gateway (and OpenAI-compatible
# servers); lemur: LeMUR; speech: OpenAI-compatible speech-to-text servers.
Family = Literal["uploads", "transcriptions", "polls", "llm", "lemur", "speech"]
FAMILIES: Final[tuple[Family, ...]] = get_args(Family)

# What `--limit KIND=N` and a recipe's `limits:` accept: the item pool, then each family.
LIMIT_KINDS: Final[tuple[str, ...]] = ("items", *FAMILIES)
