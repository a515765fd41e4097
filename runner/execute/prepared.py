"""What one recipe needs at run time, computed once before its first item."""

from __future__ import annotations

from dataclasses import dataclass

from runner.items import Item, Shard, expand
from runner.prompt.templating import TemplateEngine, used_transcript_fields
from runner.recipe.model import Recipe, Task
from runner.recipe.taskgraph import TaskGraph


@dataclass
class PreparedRecipe:
    """What one recipe needs at run time, computed once before the first item."""

    recipe: Recipe
    engine: TemplateEngine
    items: list[Item]
    graph: TaskGraph
    tasks: tuple[Task, ...]  # in the graph's order
    needs_sentences: bool
    needs_paragraphs: bool
    needs_words: bool  # words, utterances or speakers: parsed (and checked) up front


def prepare_recipe(
    recipe: Recipe, shard: Shard | None = None, only: frozenset[str] | None = None
) -> PreparedRecipe:
    """Expand the items (this shard's; of those, only the ones named in ``only``), order
    the tasks, and find which transcript parts the templates use, so no item fetches
    sentences nobody reads."""
    engine = TemplateEngine(recipe.base_dir)
    tasks = recipe.ordered_tasks()
    used = used_transcript_fields(engine, [t for task in tasks for t in task.templates])
    quotes = any(task.quotes is not None for task in tasks)
    exports = any(task.export is not None for task in tasks)
    # `grounded:` checks align to the words, and find paraphrases among the sentences.
    grounded = any(e.kind == "grounded" for task in tasks for e in task.expectations)
    items = expand(recipe, engine)
    if shard is not None:
        items = shard.select(recipe, items)
    if only is not None:
        items = [item for item in items if item.name in only]
    return PreparedRecipe(
        recipe=recipe,
        engine=engine,
        items=items,
        graph=recipe.graph,
        tasks=tasks,
        needs_sentences=quotes or grounded or bool(used & {"sentences", "*"}),
        needs_paragraphs=bool(used & {"paragraphs", "*"}),
        needs_words=exports
        or quotes
        or grounded
        or bool(used & {"words", "utterances", "speakers", "*"}),
    )
