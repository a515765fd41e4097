"""The transcript: its parsing and views (``model``), the template filters (``text``),
exports (subtitles, readable text, word tables), quotes aligned to words (``quotes``,
``semantic`` with ``embedding``), and speech-to-text on this machine (``local_engine``).
Knows nothing of recipes or the network."""
