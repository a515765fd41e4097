"""What one recipe needs at run time, computed once before its first item."""

from __future__ import annotations

from dataclasses import dataclass

from runner.items import Group, Item, Shard, expand, groups_of
from runner.prompt.templating import TemplateEngine, used_transcript_fields
from runner.recipe.model import Over, Recipe, Task
from runner.recipe.taskgraph import TaskGraph


@dataclass
class PreparedRecipe:
    """What one recipe needs at run time, computed once before the first item."""

    recipe: Recipe
    engine: TemplateEngine
    items: list[Item]
    graph: TaskGraph
    tasks: tuple[Task, ...]  # each item's, in the graph's order
    # Tasks run once per group of items (`over:`), after the items' tasks; the groups
    # of each `over:` they use.
    group_tasks: tuple[Task, ...]
    groups: dict[Over, list[Group]]
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
    every = recipe.ordered_tasks()
    tasks = tuple(task for task in every if task.over is None)
    group_tasks = tuple(task for task in every if task.over is not None)
    used = used_transcript_fields(engine, [t for task in tasks for t in task.templates])
    quotes = any(task.quotes is not None for task in tasks)
    exports = any(task.export is not None for task in tasks)
    # A task that may be read in parts is cut at its paragraphs.
    long = any(task.long is not None for task in tasks)
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
        group_tasks=group_tasks,
        groups={
            task.over: groups_of(task.over.group_by, items)
            for task in group_tasks
            if task.over is not None
        },
        needs_sentences=quotes or grounded or bool(used & {"sentences", "*"}),
        needs_paragraphs=long or bool(used & {"paragraphs", "*"}),
        needs_words=exports
        or quotes
        or long
        or grounded
        or bool(used & {"words", "utterances", "speakers", "*"}),
    )
