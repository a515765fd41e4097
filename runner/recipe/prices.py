"""Price tables: what the user pays, per hour of audio and per million tokens.

A price table comes from a recipe's ``prices:``, from ``--prices FILE``, or both (the
file's prices win, model by model). transcript-runner ships no prices: they change,
and a built-in list would be presented as truth when it is not. A model the table
does not price has an unknown cost, never $0.00.

    transcription_per_hour:            # USD per hour of audio, by speech model
      universal-3-5-pro: 0.21
    transcription_features_per_hour:   # USD per hour more, by option, when enabled
      speaker_labels: 0.02
    llm_per_million_tokens:            # USD per million tokens, by model
      claude-sonnet-4-6: {input: 3.00, output: 15.00}

A recipe's table knows which transcription options the recipe enables
(:meth:`PriceTable.enabling`), so a feature's price is added to each of its
transcriptions; the file's table, merged in, brings prices, not options.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.diagnostics import unreadable


@dataclass(frozen=True)
class LlmPrice:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens


SECTIONS = ("transcription_per_hour", "transcription_features_per_hour", "llm_per_million_tokens")


@dataclass(frozen=True)
class PriceTable:
    transcription_per_hour: Mapping[str, float] = field(default_factory=dict)
    llm_per_million_tokens: Mapping[str, LlmPrice] = field(default_factory=dict)
    # Add-ons AssemblyAI bills by the hour on top of the speech model (speaker_labels,
    # entity_detection, ...), by the name of the option that enables them.
    features_per_hour: Mapping[str, float] = field(default_factory=dict)
    # The transcription options the recipe enables (set by `enabling`).
    enabled: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return (
            not self.transcription_per_hour
            and not self.llm_per_million_tokens
            and not self.features_per_hour
        )

    def enabling(self, options: Mapping[str, Any]) -> PriceTable:
        """This table for transcriptions made with ``options``: an option set to
        anything but false or empty enables its feature's price."""
        on = frozenset(k for k, v in options.items() if v not in (False, None, "", [], {}))
        return replace(self, enabled=on)

    def transcription(self, model: str | None, seconds: float | None) -> float | None:
        """The cost of ``seconds`` of audio transcribed by ``model``, with the priced
        features the recipe enables; None when unknown. (A feature the table does not
        price adds nothing: most options cost nothing.)"""
        price = self.transcription_per_hour.get(model or "")
        if price is None or seconds is None:
            return None
        price += sum(self.features_per_hour.get(feature, 0.0) for feature in self.enabled)
        return price * seconds / 3600

    def llm(
        self, model: str | None, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        """The cost of one call's tokens with ``model``; None when the model has no price
        or the server did not say how many tokens the call used."""
        price = self.llm_per_million_tokens.get(model or "")
        if price is None or input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000

    def call(
        self,
        model: str | None,
        provider: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> float | None:
        """The cost of one call answered by ``model``: on AssemblyAI's Gateway (``provider``
        None) by the model's price; on a provider's server (a ``providers:`` entry, or
        ``llm-url`` for ``run --llm-url``) by what the table prices as ``PROVIDER/model``
        or ``PROVIDER/*``, and nothing when it prices neither: a server of one's own
        bills nothing AssemblyAI knows of, and its model is no Gateway model."""
        if provider is None:
            return self.llm(model, input_tokens, output_tokens)
        for key in (f"{provider}/{model}", f"{provider}/*"):
            if key in self.llm_per_million_tokens:
                return self.llm(key, input_tokens, output_tokens)
        return 0.0

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s prices added, ``other`` winning where both price a model."""
        return PriceTable(
            MappingProxyType({**self.transcription_per_hour, **other.transcription_per_hour}),
            MappingProxyType({**self.llm_per_million_tokens, **other.llm_per_million_tokens}),
            MappingProxyType({**self.features_per_hour, **other.features_per_hour}),
            self.enabled | other.enabled,
        )


class PriceTableError(ValueError):
    """A price table that is not one; the message names the key."""


def price_table(data: Any, where: str = "prices") -> PriceTable:
    """A :class:`PriceTable` from its YAML/JSON form, checked: every price a number
    of dollars, zero or more."""
    if data is None:
        return PriceTable()
    if not isinstance(data, Mapping):
        raise PriceTableError(f"{where}: a price table is a mapping (see docs/prices.example.yaml)")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise PriceTableError(
            f"{where}: unknown key {unknown[0]!r}; a price table has "
            f"{', '.join(SECTIONS[:-1])} and {SECTIONS[-1]}"
        )
    speech = _mapping(data.get("transcription_per_hour"), f"{where}.transcription_per_hour")
    llm = _mapping(data.get("llm_per_million_tokens"), f"{where}.llm_per_million_tokens")
    features = _mapping(
        data.get("transcription_features_per_hour"), f"{where}.transcription_features_per_hour"
    )
    return PriceTable(
        MappingProxyType(
            {
                str(model): _usd(value, f"{where}.transcription_per_hour.{model}")
                for model, value in speech.items()
            }
        ),
        MappingProxyType(
            {
                str(model): _llm_price(value, f"{where}.llm_per_million_tokens.{model}")
                for model, value in llm.items()
            }
        ),
        MappingProxyType(
            {
                str(name): _usd(value, f"{where}.transcription_features_per_hour.{name}")
                for name, value in features.items()
            }
        ),
    )


def load_price_file(path: Path) -> PriceTable:
    """``--prices FILE``: a YAML price table."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceTableError(unreadable(path, exc, "price table")) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    return price_table(data, str(path))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PriceTableError(f"{where}: expected a mapping of model names to prices")
    return value


def _usd(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PriceTableError(f"{where}: expected a price in dollars (a number), got {value!r}")
    if value < 0:
        raise PriceTableError(f"{where}: a price cannot be negative ({value})")
    return float(value)


def _llm_price(value: Any, where: str) -> LlmPrice:
    if not isinstance(value, Mapping) or set(value) != {"input", "output"}:
        raise PriceTableError(
            f"{where}: expected {{input: USD, output: USD}} per million tokens, got {value!r}"
        )
    return LlmPrice(
        _usd(value["input"], f"{where}.input"), _usd(value["output"], f"{where}.output")
    )


def by_recipe(
    tables: Mapping[str, PriceTable], file: Path | None = None
) -> dict[str, PriceTable] | None:
    """Each recipe's own table with ``file``'s prices added (the file wins); None when
    nothing is priced at all, so no cost is claimed."""
    extra = load_price_file(file) if file is not None else PriceTable()
    merged = {name: table.merged(extra) for name, table in tables.items()}
    return None if all(table.empty for table in merged.values()) else merged


def format_usd(amount: float) -> str:
    """Dollars as people read them, small amounts without rounding to nothing.

    >>> format_usd(0.000412), format_usd(0.0123), format_usd(12.5), format_usd(0)
    ('$0.0004', '$0.0123', '$12.50', '$0.00')
    """
    if amount == 0:
        return "$0.00"
    if amount < 1:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"
