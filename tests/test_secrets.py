"""No key of the run reaches a file, a stream or the state store, whatever form a server
echoes it in (runner/api/secrets.py); and a recipe sends only variables the operator
allowed."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, serve_in_thread, status
from fakelocal import FakeLocalLLM

from runner.api import key_forms
from runner.api.secrets import (
    ALLOWED_KEYS_ENV,
    REDACTED,
    Secrets,
    key_variable_problem,
)

KEY = "sk+live/7c1e9b0f+Zq/do-not-leak-4d2"  # `+` and `/`: what JSON may escape
BOX_KEY = "box/7Hq+Lm2/Xw-provider-9f"


def b64(text: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def forms(key: str) -> dict[str, str]:
    """The ways a server may give ``key`` back: every one reads back as the key."""
    return {
        "as is": key,
        "upper case": key.upper(),
        "lower case": key.lower(),
        "json \\u (every character)": "".join(f"\\u{ord(c):04x}" for c in key),
        "json \\u002B and \\u002F": key.replace("+", "\\u002B").replace("/", "\\u002F"),
        "json \\/": key.replace("/", "\\/"),
        "percent-encoded": quote(key, safe=""),
        "html entities": "".join(f"&#{ord(c)};" for c in key),
        "base64": b64(key),
        "base64 unpadded": b64(key).rstrip("="),
        "base64 url-safe": b64(key, urlsafe=True),
        "base64 url-safe unpadded": b64(key, urlsafe=True).rstrip("="),
        "base64 of Bearer KEY": b64(f"Bearer {key}"),
        "base64 of user:KEY": b64(f"user:{key}"),
    }


def found_in(text: str, keys: tuple[str, ...] = (KEY, BOX_KEY)) -> list[str]:
    """The forms of ``keys`` in ``text``, and in what it reads back as (JSON decoded,
    HTML unescaped)."""
    readings = [text, html.unescape(text)]
    try:
        readings.append(json.dumps(json.loads(text), ensure_ascii=False))
    except ValueError:
        readings += [_decoded_line(line) for line in text.splitlines()]
    return sorted(
        {
            f"{key[:3]}… {name}"
            for key in keys
            for name, form in forms(key).items()
            for reading in readings
            if form in reading
        }
    )


def _decoded_line(line: str) -> str:
    try:
        return json.dumps(json.loads(line), ensure_ascii=False)
    except ValueError:
        return line


def database_texts(path: Path) -> list[str]:
    """Every value of every row of the state store, decompressed."""
    texts = []
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):  # kept transcripts
                            value = zlib.decompress(value)
                        value = value.decode("utf-8", "replace")
                    texts.append(str(value))
    return texts


# ---------------------------------------------------------------------------------------
# The redactor.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(forms(KEY)))
def test_every_form_of_a_key_is_redacted_in_text_and_in_a_json_body(name: str) -> None:
    secrets = Secrets([KEY])
    form = forms(KEY)[name]
    text = secrets.redact(f"the server said: {form}, twice: {form}.")
    assert found_in(text, (KEY,)) == [], text
    assert REDACTED in text
    body = secrets.redact_bytes(('{"error": "header was ' + form + '"}').encode())
    assert found_in(json.loads(body)["error"], (KEY,)) == [], body


def test_a_key_split_by_escapes_anywhere_is_still_the_key() -> None:
    secrets = Secrets([KEY])
    mixed = "".join(f"\\u{ord(c):04X}" if i % 3 == 0 else c for i, c in enumerate(KEY))
    body = secrets.redact_bytes(json.dumps({"a": "x"}).replace("x", mixed).encode())
    assert json.loads(body) == {"a": REDACTED}


def test_what_holds_no_key_is_left_as_it_was() -> None:
    secrets = Secrets([KEY, BOX_KEY])
    body = json.dumps({"text": "sk live do not leak", "n": 1.5e20, "u": "caf\\u00e9"}).encode()
    assert secrets.redact_bytes(body) == body
    assert Secrets().redact("anything") == "anything"


def test_a_short_key_is_redacted_as_a_whole_word_in_its_own_case_only() -> None:
    secrets = Secrets(["none"])
    said = secrets.redact("there is none; nonetheless NONE, none.")
    assert said == f"there is {REDACTED}; nonetheless NONE, {REDACTED}."


def test_a_key_that_contains_another_is_redacted_whole() -> None:
    inner = KEY[3:20]
    assert Secrets([inner, KEY]).redact(f"<{KEY}>") == f"<{REDACTED}>"


def test_decoded_data_is_redacted_keys_and_values() -> None:
    data = {KEY.upper(): [b64(KEY), ("x", 1)], "n": None}
    assert Secrets([KEY]).redact_data(data) == {REDACTED: [REDACTED, ("x", 1)], "n": None}


ACCENTED_KEY = "clé-sécrète/7c1e9b0f-😀"  # two bytes, four bytes, and what JSON may escape


def test_text_beyond_ascii_is_redacted_at_the_right_characters() -> None:
    """Text is searched as its UTF-8: what is found is put back between the same
    characters, whatever stands before, inside (escaped or not) and after the key."""
    secrets = Secrets([ACCENTED_KEY])
    mixed = ACCENTED_KEY.replace("é", "\\u00E9", 1).replace("è", "%C3%A8").replace("/", "\\/")
    assert "é" in mixed  # escaped and literal, in one form
    assert "\\u00E9" in mixed
    text = f"« café » {mixed}… naïve {b64(ACCENTED_KEY)}😀 {ACCENTED_KEY.upper()}\udc80 fin"
    assert secrets.redact(text) == f"« café » {REDACTED}… naïve {REDACTED}😀 {REDACTED}\udc80 fin"
    body = text.replace("\udc80", "").encode()
    expected = f"« café » {REDACTED}… naïve {REDACTED}😀 {REDACTED} fin"
    assert secrets.redact_bytes(body) == expected.encode()
    untouched = "« café » naïve 😀 \udc80 clé-sécrète/7c1e9b0f"  # the key's start only
    assert secrets.redact(untouched) is untouched


def test_a_key_with_letters_beyond_ascii_is_redacted_in_the_other_case() -> None:
    """The runs searched hold the key's letters in either case: ``É`` (C3 89) is no
    byte of ``é`` (C3 A9), and the key in capitals used to come back whole."""
    secrets = Secrets([ACCENTED_KEY])
    for cased in (ACCENTED_KEY.upper(), ACCENTED_KEY.title()):
        assert secrets.redact(f"«{cased}»") == f"«{REDACTED}»"
        assert secrets.redact_bytes(f"«{cased}»".encode()) == f"«{REDACTED}»".encode()


def test_a_key_holding_a_byte_the_environment_could_not_decode_is_redacted() -> None:
    """A lone surrogate (how Python reads such a byte from the environment) is a
    character like any other; building the patterns used to raise UnicodeEncodeError."""
    key = "sk-live-\udc80-do-not-leak"
    assert Secrets([key]).redact(f"[{key}] [{key.upper()}]") == f"[{REDACTED}] [{REDACTED}]"


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes patterns compiled during the test (the redactor's are bytes)."""
    compiled: list[bytes] = []
    real = re.compile

    def counting(pattern: Any, flags: int = 0) -> re.Pattern[Any]:
        if isinstance(pattern, bytes):
            compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    return compiled


def test_the_patterns_are_compiled_only_when_a_body_needs_them(compiles: list[bytes]) -> None:
    """Nothing is compiled for Secrets built and never used, or used on bodies without
    a run long enough for a form; a small pattern of the forms' beginnings for a body
    with such runs (one begins as the key does, for five characters); the whole
    pattern, once, when a form begins in one."""
    key = "sk-compiled-late-3b8e61"  # no other test's: the matcher is shared per set of keys
    secrets = Secrets([key]).with_keys([key])
    assert secrets.redact("a short answer") == "a short answer"
    assert secrets.redact_bytes(b'{"status": "ok"}') == b'{"status": "ok"}'
    assert compiles == []
    said = "id 5551a2c6-7e6a-4f3e-9b1e-7c1e9b0f2a11 sk-counting-the-words-of-each-recording"
    assert secrets.redact(said) == said
    assert len(compiles) == 1
    assert secrets.redact(f"{said} {key}") == f"{said} {REDACTED}"
    assert secrets.redact_bytes(f"{key}!".encode()) == f"{REDACTED}!".encode()
    assert len(compiles) == 2
    assert len(compiles[1]) > 3 * len(compiles[0])  # the beginnings first, then the whole


def test_threads_redacting_at_once_compile_the_patterns_once(compiles: list[bytes]) -> None:
    """Bodies are redacted on worker threads: the first ones wait for one compilation."""
    key = "sk-threads-at-once-9c2d47"
    secrets = Secrets([key])
    start = threading.Barrier(6)
    said: list[str] = []

    def redact() -> None:
        start.wait()
        said.append(secrets.redact(f"echo {b64('Bearer ' + key)} end"))

    threads = [threading.Thread(target=redact) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert said == [said[0]] * 6
    assert REDACTED in said[0]
    assert found_in(said[0], (key,)) == []
    assert len(compiles) == 2


@pytest.mark.parametrize(
    "keys",
    [
        ("abcdefgh", "ABCDEFGH12", "none"),  # in either case, one inside another, a short key
        ("k%25&#x;-xyz9", 'q"/\\q-12345'),  # characters that may begin another's escape
        (ACCENTED_KEY,),
    ],
)
def test_the_tree_of_forms_finds_what_their_list_finds(keys: tuple[str, ...]) -> None:
    """Forms that begin alike are compiled as a tree of their beginnings, which must
    find, at every place, the form the list of forms (longest first) finds: the same
    places, the same lengths."""
    every = key_forms.every_form(keys)
    tree = re.compile(key_forms.alternation(every).encode("utf-8", "surrogatepass"))
    listed = re.compile("|".join(form.pattern() for form in every).encode("utf-8", "surrogatepass"))
    assert tree.pattern != listed.pattern
    written = [form for key in keys for form in forms(key).values()]
    texts = [
        *written,
        *(f"{one}{other}" for one in written[::3] for other in written[1::4]),
        *(form[:cut] + "=Z9" for form in written for cut in (6, 9, -1)),
    ]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        found = [m.span() for m in tree.finditer(data)]
        assert found == [m.span() for m in listed.finditer(data)], text


@pytest.mark.parametrize(
    ("plain_forms", "text"),
    [
        # A key's own form takes its letters in either case, a base64 form in one.
        (
            [("c" + "Q" * 29, False), ("cdefghijklmnopqrstuv", True), ("cdefghijkl", False)],
            "cdefghijklMNOPQRSTUV",
        ),
        # "%" is itself or begins the escape of "4" (%34).
        (
            [("x%34" + "a" * 20, False), ("x4" + "b" * 14, False), ("x%34bbbbbb", False)],
            "x%34" + "b" * 14,
        ),
    ],
)
def test_a_tree_never_forks_where_a_text_could_follow_both_branches(
    plain_forms: list[tuple[str, bool]], text: str
) -> None:
    """Were the forms' beginnings one tree, it would follow the first branch that
    begins the text, and find the last form's 10 characters where the list of forms
    (longest first) finds the second's, longer."""
    written = [key_forms.Form(plain, fold_case=fold) for plain, fold in plain_forms]
    tree = re.compile(key_forms.alternation(written).encode())
    listed = re.compile("|".join(form.pattern() for form in written).encode())
    found = listed.match(text.encode())
    assert found is not None
    assert found.end() == len(text)
    assert tree.match(text.encode()).span() == found.span()  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------
# Which variables a recipe may send.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "listed", "allowed"),
    [
        ("TRANSCRIPT_RUNNER_LLM_KEY", "", True),
        ("TRANSCRIPT_RUNNER_BOX_KEY", "", True),
        ("OPENAI_API_KEY", "", False),
        ("OPENAI_API_KEY", "OTHER, OPENAI_API_KEY", True),
        ("NPM_TOKEN", "", False),
        ("AWS_SECRET_ACCESS_KEY", "", False),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),  # never, even listed
        ("GITHUB_TOKEN", "GITHUB_TOKEN", False),
        ("ASSEMBLYAI_API_KEY", "ASSEMBLYAI_API_KEY", False),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "", False),
    ],
)
def test_a_recipe_names_only_a_variable_the_operator_allowed(
    name: str, listed: str, allowed: bool
) -> None:
    problem = key_variable_problem(name, {ALLOWED_KEYS_ENV: listed})
    assert (problem is None) == allowed, problem


@pytest.mark.parametrize("variable", ["AWS_SECRET_ACCESS_KEY", "NPM_TOKEN"])
def test_run_refuses_a_recipe_naming_a_ci_secret_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli, variable: str
) -> None:
    server = FakeLocalLLM()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, KEY)
    monkeypatch.delenv(ALLOWED_KEYS_ENV, raising=False)
    (tmp_path / "saved.json").write_text(json.dumps({"id": "t1", "text": "Hello.", "words": []}))
    with serve_in_thread(server) as base:  # type: ignore[arg-type]
        (tmp_path / "r.yaml").write_text(
            PROVIDER_RECIPE.replace("URL", f"{base}/v1").replace("VARIABLE", variable)
        )
        code, out, err = run_cli("run", "r.yaml", "--progress", "plain")
    assert code == 3, err
    assert f"r.yaml:8:18: $.providers.box.api_key_env: api_key_env {variable!r}" in err
    assert server.requests == []
    assert found_in(out + err, (KEY,)) == []


PROVIDER_RECIPE = """\
version: 1
name: r
inputs: [{transcript_file: saved.json}]
providers:
  box:
    type: openai-compatible
    base_url: URL
    api_key_env: VARIABLE
tasks:
  facts:
    model: box/smollm2
    prompt: "Facts: {{ transcript.text }}"
"""


# ---------------------------------------------------------------------------------------
# A whole run against servers that echo the keys.
# ---------------------------------------------------------------------------------------

LEAKY_RECIPE = """\
version: 1
name: leaky
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - url: https://media.example.com/broken.mp3
providers:
  box:
    type: openai-compatible
    base_url: BOX_URL
    api_key_env: TRANSCRIPT_RUNNER_BOX_KEY
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
  streamed:
    stream: true
    prompt: "Stream: {{ transcript.text }}"
  refused:
    model: gpt-4.1
    prompt: "Refused: {{ transcript.text }}"
  local:
    model: box/smollm2
    prompt: "Local: {{ transcript.text }}"
"""


def echoed(*keys: str) -> str:
    """A reply quoting ``keys`` in every form (the key itself last: it is the one the
    server's JSON writer then escapes)."""
    return " | ".join(form for key in keys for form in reversed(forms(key).values()))


def escaping(body: bytes) -> bytes:
    """JSON as a server that escapes `+` and `/` writes it (valid: they are only in
    strings here)."""
    return body.replace(b"+", b"\\u002B").replace(b"/", b"\\u002F")


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.mark.slow
def test_no_form_of_any_key_reaches_a_file_a_stream_or_the_state_store(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AssemblyAI and the Gateway escape every `+` and `/` of their JSON, echo both keys
    in errors (a failed transcript, a refused task) and in replies (plain, streamed in
    pieces, and in a provider's reply): nothing of either key is kept anywhere."""
    fake.rewrite = escaping
    fake.gateway.responder = lambda request: f"Reply quoting {echoed(KEY, BOX_KEY)} end"
    fake.fail_audio("broken", error=f"cannot fetch with Authorization: Bearer {KEY}")
    refusal = {"error": {"message": f"model refused for key {echoed(KEY)}"}}
    fake.faults.add(
        "POST /v1/chat/completions", status(400, body=refusal), times=None, model="gpt-4.1"
    )
    box = FakeLocalLLM(key=BOX_KEY, responder=lambda body: f"Box says {echoed(BOX_KEY, KEY)}")
    monkeypatch.setenv("TRANSCRIPT_RUNNER_BOX_KEY", BOX_KEY)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(served / "summary.md"))
    with serve_in_thread(box) as box_url:  # type: ignore[arg-type]
        (served / "leaky.yaml").write_text(LEAKY_RECIPE.replace("BOX_URL", f"{box_url}/v1"))
        code, out, err = run_cli(
            "run",
            "leaky.yaml",
            "--progress",
            "plain",
            "--junit",
            "junit.xml",
            "--report",
            "report.html",
        )
    assert code == 1, err  # the broken recording and the refused task fail
    assert box.requests
    assert box.requests[0].authorization == f"Bearer {BOX_KEY}"
    leaks = {"stdout": found_in(out), "stderr": found_in(err)}
    written = [p for p in served.rglob("*") if p.is_file() and p.name != "leaky.yaml"]
    names = {p.name for p in written}
    assert names >= {"run.json", "junit.xml", "summary.md", "report.html", "state.db"}, names
    assert any(p.parent.name == "board-meeting" for p in written)
    for path in written:
        leaks[str(path.relative_to(served))] = found_in(path.read_bytes().decode("latin-1"))
    (database,) = [p for p in written if p.name == "state.db"]
    leaks["state.db rows"] = [f for text in database_texts(database) for f in found_in(text)]
    assert {where: found for where, found in leaks.items() if found} == {}
    assert REDACTED in (served / "out" / "run.json").read_text()


def test_a_body_redacts_a_key_whose_every_character_is_escaped_with_digits_it_lacks() -> None:
    """The bytes search first finds runs of characters a form can hold: the hex digits of
    ``\\u0073`` are such characters even when the key has none of them (the audit's
    failed-transcript error came back verbatim through a listing page)."""
    key = "sk-live-fi-4b7d2a91-do-not-leak"
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    body = json.dumps({"error": "x"}).replace('"x"', f'"with {escaped} | {key.upper()}"')
    redacted = Secrets([key]).redact_bytes(body.encode())
    assert json.loads(redacted) == {"error": "with [REDACTED] | [REDACTED]"}


@pytest.mark.parametrize("where", ["bytes", "ascii text", "text beyond ascii"])
def test_a_key_in_a_long_body_of_short_runs_is_found_at_its_start_middle_and_end(
    where: str,
) -> None:
    """Runs are found in C, in the bytes or the text's UTF-8 (a translated copy of the
    bytes): every form is still found, wherever it sits among thousands of short
    words, and what holds none comes back as it was."""
    secrets = Secrets([KEY])
    words = " ".join(["words", "of-a", "transcript", "0.93,"] * 2000)
    tail = " café" if where == "text beyond ascii" else ""
    for form in (KEY, forms(KEY)["base64"], forms(KEY)["json \\u (every character)"]):
        text = f"{form} {words} {form}{words}{form}{tail}"
        said = secrets.redact(text) if where != "bytes" else secrets.redact_bytes(text.encode())
        plain = said if isinstance(said, str) else said.decode()
        assert plain.count(REDACTED) == 3, form
        assert found_in(plain, (KEY,)) == []
    untouched = f"{words}{tail}"
    assert secrets.redact(untouched) is untouched


def test_a_key_that_is_another_keys_base64_core_is_found_in_either_case() -> None:
    """The key QUJDREVGR0g is also ABCDEFGH's base64 (exact case only). Whichever key's
    form came first decided (by the order of a set, so by the hash seed) whether it was
    found in its other case; both ways are now one form, in either case."""
    for keys in (["QUJDREVGR0g", "ABCDEFGH"], ["ABCDEFGH", "QUJDREVGR0g"]):
        secrets = Secrets(keys)
        assert secrets.redact("echo qujdrevgr0g and QUJDREVGR0g") == (
            f"echo {REDACTED} and {REDACTED}"
        )
