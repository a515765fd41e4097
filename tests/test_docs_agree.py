"""The docs agree with the code and with each other: every command and every
environment variable the code reads is in docs/cli.md (one table of variables, which
the README links to), the sharding rule is stated once, and what the newcomer found
contradicting itself no longer does."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import click

from runner.cli import cli
from runner.items import Shard

REPO = Path(__file__).resolve().parent.parent
CLI_DOC = (REPO / "docs" / "cli.md").read_text()
DOCS = {path.name: path.read_text() for path in (REPO / "docs").glob("*.md")}
README = (REPO / "README.md").read_text()


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    end = re.search(rf"\n{level} ", text[start + len(heading) + 2 :])
    return text[start : start + len(heading) + 2 + end.start()] if end else text[start:]


def _commands() -> list[str]:
    assert isinstance(cli, click.Group)
    return sorted(cli.commands)


def test_every_command_is_in_the_intro_the_contents_and_the_table_of_docs_cli() -> None:
    intro = CLI_DOC[: CLI_DOC.index("Contents:")]
    contents = CLI_DOC[CLI_DOC.index("Contents:") : CLI_DOC.index("## Every command")]
    table = _section(CLI_DOC, "## Every command")
    for command in _commands():
        assert f"`{command}`" in intro, command
        assert f"[`{command}`](#{command})" in contents, command
        assert f"| `transcript-runner {command}" in table, command
        assert f"\n## `{command}`\n" in CLI_DOC, command


def _read_variables() -> set[str]:
    """Every environment variable the code reads: ``environ.get("X")``,
    ``environ["X"]`` (read, not written), ``os.getenv("X")``, a module constant named
    ``*_ENV``, and click's ``envvar="X"``."""
    found: set[str] = set()
    for path in (REPO / "runner").rglob("*.py"):
        source = path.read_text()
        if not any(mark in source for mark in ("environ", "getenv", "envvar", "_ENV")):
            continue  # (parsing every module is most of this test's time)
        tree = ast.parse(source, str(path))
        for node in ast.walk(tree):
            found |= _variables_in(node)
    return found


def _names_environ(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("environ", "env")


def _variables_in(node: ast.AST) -> set[str]:
    def text(value: ast.AST) -> str | None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
        return None

    found: set[str | None] = set()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        if node.func.attr == "get" and _names_environ(node.func.value):
            found.add(text(node.args[0]))
        if node.func.attr == "getenv":
            found.add(text(node.args[0]))
    if isinstance(node, ast.Call):
        found |= {text(k.value) for k in node.keywords if k.arg == "envvar"}
    loaded = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Subscript) and loaded and _names_environ(node.value):
        found.add(text(node.slice))
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id.endswith("_ENV"):
            found.add(text(node.value))
    if (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id.endswith("_ENV")
        and node.value is not None
    ):
        found.add(text(node.value))
    return {name for name in found if name and re.fullmatch(r"[A-Z][A-Z0-9_]+", name)}


def test_every_environment_variable_the_code_reads_is_in_the_one_table() -> None:
    table = _section(CLI_DOC, "## Environment variables")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    read = _read_variables()
    # The scan finds what it should (a guard against a scan that finds nothing).
    assert {"ASSEMBLYAI_API_KEY", "TRANSCRIPT_RUNNER_LLM_URL", "CI"} <= read
    assert {"TRANSCRIPT_RUNNER_LLM_KEY", "TRANSCRIPT_RUNNER_LLM_STRUCTURED_OUTPUT"} <= read
    assert sorted(read - documented) == []


def test_the_readme_links_to_the_table_and_keeps_none_of_its_own() -> None:
    assert "(docs/cli.md#environment-variables)" in README
    assert not re.search(r"^\| `ASSEMBLYAI_", README, re.MULTILINE)
    variable = re.compile(r"^\| `(ASSEMBLYAI|TRANSCRIPT_RUNNER|GITHUB|HF|CI)\w*`", re.MULTILINE)
    for name, text in DOCS.items():
        if name != "cli.md":
            assert not variable.search(text), name


def test_the_sharding_rule_is_stated_once_and_is_the_code_s() -> None:
    texts = {"README.md": README, **DOCS}
    stated = {
        name: text.count("a hash of its recipe and its source") for name, text in texts.items()
    }
    assert sum(stated.values()) == 1, stated
    assert stated["cli.md"] == 1
    assert "recipe name and item name" not in DOCS["ci.md"]
    assert "(cli.md#the-sharding-rule)" in DOCS["ci.md"]
    # The rule as the doc states it: SHA-256 of the recipe's name and the source, its
    # first 8 bytes as a number, modulo N, is K - 1.
    for source in ("https://example.com/a.mp3", "calls/b.wav", "6c1b8a4e-1f4e"):
        digest = hashlib.sha256(f"notes\0{source}".encode()).digest()
        k = int.from_bytes(digest[:8], "big") % 4 + 1
        assert [Shard(i, 4).takes("notes", source) for i in range(1, 5)] == [
            i == k for i in range(1, 5)
        ]


def test_what_the_newcomer_found_contradicting_no_longer_does() -> None:
    recipes = DOCS["recipes.md"]
    # A task's one source includes export, in both places that list them.
    assert recipes.count("`prompt`, `prompt_file`, `messages`, `quotes` and") == 2
    assert "`prompt_file`, `messages` and `quotes`;" not in recipes
    assert "and nothing else. For" not in recipes
    # run needs a key only for what goes to AssemblyAI.
    table = _section(CLI_DOC, "## Every command")
    assert "needed (except `--dry-run`)" not in table
    assert "`recipes/first-run.yaml`, `recipes/exports.yaml`" in table
    # README and CONTRIBUTING give the same suite time.
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    times = re.findall(r"about (\d+) s on 2 cores", README + contributing)
    assert len(times) == 2, times
    assert len(set(times)) == 1, times
