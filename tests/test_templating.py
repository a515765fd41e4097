"""The template engine: strict, sandboxed, confined; data is never a template."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from runner.errors import TemplateProblem
from runner.prompt.payloads import render_messages
from runner.prompt.templating import TemplateEngine, used_transcript_fields
from runner.prompt.views import (
    ItemView,
    Namespace,
    RecipeView,
    TaskResultView,
    TranscriptView,
    prompt_context,
    sample_transcript_view,
)
from runner.recipe.model import Template, TemplateOrigin
from runner.transcript.model import Transcript

FIXTURES = Path(__file__).parent / "fixtures" / "assemblyai"


def template(source: str, first_line: int = 10, column: int = 7) -> Template:
    origin = TemplateOrigin("recipe.yaml", ("tasks", "summary", "prompt"), first_line, column, True)
    return Template(source, origin, "summary")


def context(text: str | None = None, **variables: object) -> dict[str, object]:
    view = sample_transcript_view()
    if text is not None:
        data = {"id": "t1", "status": "completed", "text": text, "words": []}
        view = TranscriptView.build(Transcript.from_api(data))
    return prompt_context(
        transcript=view,
        item=ItemView("call-1", "https://example.com/a.mp3", Namespace("item.vars", {})),
        variables={"audience": "the board", **variables},
        tasks={"summary": TaskResultView.build("summary", "Short summary.", {"items": ["a"]})},
        recipe=RecipeView("notes", "Meeting notes"),
    )


def messages_of(problem: pytest.ExceptionInfo[TemplateProblem]) -> list[str]:
    return [p.format() for p in problem.value.problems]


@pytest.fixture
def engine(tmp_path: Path) -> TemplateEngine:
    return TemplateEngine(tmp_path)


def test_renders_variables_and_filters(engine: TemplateEngine) -> None:
    out = engine.render(
        template(
            "For {{ vars.audience }}: {{ transcript.utterances[1].start | timestamp }} "
            "{{ transcript.audio_duration | duration }} {{ tasks.summary.json.items | length }}"
        ),
        context(),
    )
    assert out == "For the board: 00:00:04 00:00:12 1"


def test_every_missing_name_is_reported_at_once_with_recipe_lines(engine: TemplateEngine) -> None:
    source = "Hello {{ vars.audiance }}\n\n{{ transcript.txt }} and {{ speaker }}\n"
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template(source), context())
    assert messages_of(problem) == [
        "recipe.yaml:10:21: $.tasks.summary.prompt: undefined variable 'vars.audiance'; "
        "did you mean 'vars.audience'?",
        "recipe.yaml:12:21: $.tasks.summary.prompt: transcript has no field 'txt'; "
        "did you mean 'text'?",
        "recipe.yaml:12:35: $.tasks.summary.prompt: undefined variable 'speaker' "
        "(available: item, recipe, tasks, transcript, vars)",
    ]


def test_task_not_in_needs_says_to_add_it(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template("{{ tasks.headline.text }}"), context())
    assert messages_of(problem) == [
        "recipe.yaml:10:16: $.tasks.summary.prompt: tasks.headline is not available to this "
        "task; add 'headline' to its `needs` (only tasks listed in needs can be used)"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ transcript.words.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ vars.__class__ }}",
    ],
)
def test_sandbox_escapes_fail_clearly(engine: TemplateEngine, source: str) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template(source), context())
    (message,) = messages_of(problem)
    assert "the sandbox blocks Python internals" in message
    assert message.startswith("recipe.yaml:10:7: $.tasks.summary.prompt: ")


def test_sandbox_escape_exact_message(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template("{{ ''.__class__.__mro__ }}"), context())
    assert messages_of(problem) == [
        "recipe.yaml:10:7: $.tasks.summary.prompt: templates cannot use '__class__' of a str "
        "value: the sandbox blocks Python internals and changes to data; use the documented "
        "variables in docs/templates.md"
    ]


def test_templates_cannot_modify_data(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template("{% set d = {} %}{{ d.update({'a': 1}) }}"), context())
    assert "templates cannot use 'update' of a dict value" in messages_of(problem)[0]


@pytest.mark.parametrize(
    "text",
    [
        "He said {{ 7*7 }} twice.",
        "Raw {% raw %} block {% endraw %} here",
        "A comment opener {# never closed",
        "{% for x in range(10) %}loop{% endfor %}",
        "{{ transcript }}",
    ],
)
def test_transcript_text_is_data_never_a_template(engine: TemplateEngine, text: str) -> None:
    out = engine.render(template("Transcript: {{ transcript.text }}"), context(text=text))
    assert out == f"Transcript: {text}"


def test_csv_cells_and_task_replies_are_data(engine: TemplateEngine) -> None:
    ctx = context(customer="{{ 7*7 }}")
    ctx["tasks"] = Namespace("tasks", {"summary": TaskResultView.build("summary", "{% if %}")})
    out = engine.render(template("{{ vars.customer }} / {{ tasks.summary.text }}"), ctx)
    assert out == "{{ 7*7 }} / {% if %}"


def test_bare_transcript_is_refused_with_advice(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template("Summarize:\n{{ transcript }}"), context())
    assert messages_of(problem) == [
        "recipe.yaml:11: $.tasks.summary.prompt: {{ transcript }} is the whole transcript "
        "object; write {{ transcript.text }} for the transcript text, or "
        "{{ gateway_transcript }} with `inject_transcript: true` to let the LLM Gateway "
        "insert it"
    ]


def test_syntax_error_is_located_at_the_recipe_line(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.compile(template("line one\nline two\n{% if transcript.text %}\nno end"))
    (message,) = messages_of(problem)
    # At the {% if %} left open (line 3 of the template), not where Jinja noticed.
    assert message == (
        "recipe.yaml:12:7: $.tasks.summary.prompt: this {% if %} is never closed; "
        "add {% endif %} where its part of the prompt ends"
    )


def test_unknown_filter_suggests_the_right_one(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.compile(template("{{ transcript.utterances | dialouge }}"))
    # The column is that of the filter's name, not of the template's first character.
    assert messages_of(problem) == [
        "recipe.yaml:10:34: $.tasks.summary.prompt: unknown filter 'dialouge'; "
        "did you mean 'dialogue'? (docs/templates.md lists the filters)"
    ]


def test_includes_resolve_inside_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "partials").mkdir()
    (tmp_path / "partials" / "intro.j2").write_text("Audience: {{ vars.audience }}")
    engine = TemplateEngine(tmp_path)
    out = engine.render(template("{% include 'partials/intro.j2' %}!"), context())
    assert out == "Audience: the board!"


def test_a_partial_rewritten_with_its_old_time_is_read_again_by_the_next_engine(
    tmp_path: Path,
) -> None:
    """Engines of one folder share compiled prompts, not the partials they read: a file
    copied with its time kept (cp -p, rsync -a) is what the next command sees."""
    import os

    partial = tmp_path / "intro.j2"
    partial.write_text("old intro")
    stamp = partial.stat()
    assert TemplateEngine(tmp_path).render(template("{% include 'intro.j2' %}"), {}) == "old intro"
    partial.write_text("new intro")
    os.utime(partial, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert TemplateEngine(tmp_path).render(template("{% include 'intro.j2' %}"), {}) == "new intro"


def test_a_partial_deleted_after_a_render_is_a_located_problem(tmp_path: Path) -> None:
    partial = tmp_path / "intro.j2"
    partial.write_text("intro")
    engine = TemplateEngine(tmp_path)
    assert engine.render(template("{% include 'intro.j2' %}"), {}) == "intro"
    partial.unlink()
    for renderer in (engine, TemplateEngine(tmp_path)):  # the same engine, and the next
        with pytest.raises(TemplateProblem) as problem:
            renderer.render(template("{% include 'intro.j2' %}"), {})
        assert messages_of(problem)[0].startswith("recipe.yaml:10:7: $.tasks.summary.prompt: ")
        assert "template 'intro.j2' not found" in messages_of(problem)[0]


@pytest.mark.parametrize("target", ["../secret.txt", "/etc/passwd", "partials/../../secret.txt"])
def test_includes_cannot_leave_the_recipe_folder(tmp_path: Path, target: str) -> None:
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    engine = TemplateEngine(recipe_dir)
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template(f"{{% include '{target}' %}}"), context())
    assert messages_of(problem) == [
        f"recipe.yaml:10:7: $.tasks.summary.prompt: {target!r} is outside the recipe's folder; "
        "include files by a path relative to the recipe, without '..' or a leading '/'"
    ]


def test_symlink_out_of_the_recipe_folder_is_refused(tmp_path: Path) -> None:
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (recipe_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(TemplateProblem) as problem:
        TemplateEngine(recipe_dir).render(template("{% include 'link.txt' %}"), context())
    assert "resolves outside the recipe's folder" in messages_of(problem)[0]


def test_error_inside_a_partial_names_the_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "part.j2").write_text("ok\n{{ vars.nope }}\n")
    with pytest.raises(TemplateProblem) as problem:
        TemplateEngine(tmp_path).render(template("{% include 'part.j2' %}"), context())
    assert messages_of(problem)[0].startswith("part.j2:2: undefined variable 'vars.nope'")


def test_null_prints_as_nothing(engine: TemplateEngine) -> None:
    assert engine.render(template("[{{ vars.empty }}]"), context(empty=None)) == "[]"


def test_json_keys_win_over_method_names(engine: TemplateEngine) -> None:
    ctx = context()
    ctx["tasks"] = Namespace(
        "tasks", {"x": TaskResultView.build("x", "{}", {"items": [1, 2], "keys": "k"})}
    )
    assert (
        engine.render(template("{{ tasks.x.json.items | length }} {{ tasks.x.json.keys }}"), ctx)
        == "2 k"
    )


def test_used_transcript_fields(engine: TemplateEngine) -> None:
    used = used_transcript_fields(
        engine,
        [template("{{ transcript.text }} {% for s in transcript.sentences %}{% endfor %}")],
    )
    assert used == {"text", "sentences"}
    assert "*" in used_transcript_fields(engine, [template("{{ transcript | string }}")])


def test_gateway_injection_tag_and_defanged_data(engine: TemplateEngine) -> None:
    from runner.recipe.model import Message, PromptSource, Task, TaskApi

    task = Task(
        name="summary", api=TaskApi.GATEWAY, source=PromptSource.PROMPT,
        messages=(Message("user", template("{{ vars.note }}\n\n{{ gateway_transcript }}")),),
        prompt_file=None, model="m", max_tokens=None, temperature=None, needs=(),
        json_schema=None, post_process=(), gateway_post_processing=(), fallbacks=(),
        fallback_config=None, tools=(), tool_choice=None, stream=False,
        inject_transcript=True, output="summary.md", lemur=None, quotes=None,
        description="", line=1,
    )  # fmt: skip
    ctx = context(note="Data says {{ transcript }} here")
    (message,) = render_messages(engine, task, ctx)
    content = message["content"]
    assert content.endswith("\n\n{{ transcript }}")
    assert content.count("{{ transcript }}") == 1  # the data's copy was defanged
    assert content.startswith("Data says {\u200b{ transcript }\u200b} here")


def test_real_transcript_fixture_renders(engine: TemplateEngine) -> None:
    data = json.loads((FIXTURES / "transcript-wildfires.json").read_text())
    view = TranscriptView.build(Transcript.from_api(data))
    ctx = context()
    ctx["transcript"] = view
    out = engine.render(template("{{ transcript.words | length }} {{ transcript.text[:5] }}"), ctx)
    assert out == "861 Smoke"


@pytest.mark.parametrize(
    "source", ["{{ 'a' * 10**10 }}", "{{ 10 ** 100000 }}", "{{ [1] * 999999 }}"]
)
def test_templates_cannot_exhaust_memory(engine: TemplateEngine, source: str) -> None:
    with pytest.raises(TemplateProblem) as problem:
        engine.render(template(source), context())
    assert "too large for a template" in messages_of(problem)[0]


def test_small_arithmetic_still_works(engine: TemplateEngine) -> None:
    assert (
        engine.render(template("{{ '-' * 3 }} {{ 2 ** 3 }} {{ 6 * 7 }}"), context()) == "--- 8 42"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'x'|center(10**9) }}", "center() with a size over 100,000"),
        ("{{ 'x'.center(10**9) }}", "center() with a size over 100,000"),
        ("{{ 'x'|indent(10**9, true) }}", "indent() with a size over 100,000"),
        ("{{ ('a' * 90000)|replace('a', 'a' * 90000) }}", "replace() would build a text"),
        ("{{ (['a' * 90000] * 1000)|join }}", "join() would build a text"),
        ("{{ '%*d' % (10**9, 1) }}", "format width over 100,000"),
        ("{{ '{:>1000000000}'.format(1) }}", "format width over 100,000"),
        ("{{ lipsum(10**7) }}", "lipsum() makes at most 100 paragraphs"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{{ j.bit_length() }}{% endfor %}{% endfor %}",
            "more than 10,000 calls",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nests too deeply"),
    ],
)
def test_a_template_cannot_exhaust_the_machine(
    source: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates of a pull request run in CI's validate: each bomb is a located problem,
    found in a moment, never a traceback or minutes of CPU."""
    from runner.prompt import budget

    monkeypatch.setattr(budget, "MAX_CALLS", 10_000)  # the same check, sooner
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as problem:
        TemplateEngine(Path(".")).render(template(source), context())
    assert time.perf_counter() - started < 15
    (message,) = messages_of(problem)
    assert message.startswith("recipe.yaml:10")
    assert expected in message


def test_a_loop_that_calls_nothing_is_stopped_by_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.prompt import budget

    # The bound lowered, the same rule: this loop calls nothing, so only the timer stops it.
    monkeypatch.setattr(budget, "MAX_SECONDS", 0.05)
    words = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateProblem) as problem:
        TemplateEngine(Path(".")).render(template(words), context())
    assert "took more than 0.05 s to render" in messages_of(problem)[0]


def test_ordinary_numbers_and_formats_pass() -> None:
    text = TemplateEngine(Path(".")).render(
        template("Call {{ '%s' % 1234567 }} {{ 'x'|center(20) }} {{ '{:>5}'.format(7) }}"),
        context(),
    )
    assert text == "Call 1234567 " + "x".center(20) + " " + "7".rjust(5)


def test_utterances_of_a_transcript_without_speaker_labels_are_an_error_not_silence() -> None:
    """AssemblyAI sends `utterances: null` without speaker_labels; the dialogue would be
    an empty prompt, sent and paid for. Testing it first is the documented way."""
    ctx = context(text="We met on Tuesday.")
    with pytest.raises(TemplateProblem) as problem:
        TemplateEngine(Path(".")).render(template("{{ transcript.utterances | dialogue }}"), ctx)
    assert "made without speaker labels (add `speaker_labels: true`" in messages_of(problem)[0]
    guarded = "{% if transcript.utterances %}{{ transcript.utterances | dialogue }}" \
        "{% else %}{{ transcript.text }}{% endif %}"  # fmt: skip
    assert TemplateEngine(Path(".")).render(template(guarded), ctx) == "We met on Tuesday."


GROWTH = {
    "tilde": "{% set ns.s = ns.s ~ ns.s %}",
    "plus": "{% set ns.s = ns.s + ns.s %}",
    "format method": "{% set ns.s = '{0}{0}'.format(ns.s) %}",
    "percent": "{% set ns.s = '%s%s' % (ns.s, ns.s) %}",
    "join method": "{% set ns.s = ns.s.join(['a', 'b', 'c']) %}",
    "replace method": "{% set ns.s = ns.s.replace('x', 'xx') %}",
    "format filter": "{% set ns.s = '%s%s' | format(ns.s, ns.s) %}",
    "tojson": "{% set ns.s = [ns.s, ns.s] | tojson %}",
    "string": "{% set ns.s = (ns.s, ns.s) | string %}",
    "block set": "{% set b %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = b %}",
    "list plus": "{% set ns.l = ns.l + ns.l %}",
    "list sum": "{% set ns.l = [ns.l, ns.l] | sum(start=[]) %}",
}


@pytest.mark.parametrize("step", GROWTH.values(), ids=GROWTH.keys())
def test_a_value_doubled_in_a_loop_is_refused_before_it_fills_memory(
    engine: TemplateEngine, step: str
) -> None:
    """The audit's bomb: a text doubled forty times took 3 to 6 GB before a clean exit.
    Each way of growing a value stops at the render bound; memory is counted, not timed."""
    source = (
        "{% set ns = namespace(s='x', l=['x']) %}{% for i in range(40) %}"
        + step
        + "{% endfor %}{{ ns.s | length }}"
    )
    tracemalloc.start()
    try:
        with pytest.raises(TemplateProblem) as problem:
            engine.render(template(source), context())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = messages_of(problem)[0]
    assert "no model reads that much" in message or "too large for a template" in message
    assert peak < 200 * 2**20  # a few copies of the 5,000,000-character bound at most


def test_joining_texts_below_the_bound_still_works(engine: TemplateEngine) -> None:
    source = "{% set b %}{{ 'a' ~ 'b' }}{% endset %}{{ b + 'c' }} {{ [1] + [2] }} {{ 1 + 2 }}"
    assert engine.render(template(source), context()) == "abc [1, 2] 3"


def test_a_template_compiles_where_the_working_folder_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates are compiled once per process in an environment of their own: making it
    reads nothing of the working folder, which may have been removed under the run."""
    from runner.prompt import templating

    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    engine = TemplateEngine(recipe_dir)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    templating._compiler.cache_clear()  # made afresh, here
    out = engine.render(template("Hello {{ vars.audience }} (a new source)"), context())
    assert out == "Hello the board (a new source)"
