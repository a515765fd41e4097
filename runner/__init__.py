"""transcript-runner: declarative YAML recipes that run LLM prompts over AssemblyAI transcripts."""

__version__ = "0.1.0"
