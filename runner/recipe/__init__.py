"""The recipe: YAML with a mark on every key (``document``), advice for parser and schema
errors, the frozen model and its rules (``model``), building it (``build``), prices and
migrations. Everything ``validate`` and ``run`` know of a recipe file starts here."""
