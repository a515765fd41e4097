"""The services a run talks to, built over one HTTP client each, and the run itself
on them: the only place that opens the network stack, so ``validate`` and ``render``
never import aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner.api.buckets import Rate
from runner.api.config import ClientConfig
from runner.api.gateway import GatewayClient
from runner.api.http import HttpClient
from runner.api.lemur import LemurClient
from runner.api.secrets import Secrets, key_variable_problem
from runner.api.speech import SpeechClient
from runner.api.sweeps import StatusSweeper
from runner.api.transcripts import TranscriptsClient
from runner.api.transport import ByteBudget
from runner.commands.run_config import RunConfig
from runner.errors import ConfigurationError
from runner.execute.executor import Executor
from runner.execute.services import ProgressDisplay, Services, offline_services
from runner.recipe.llm_server import LLM_KEY_ENV
from runner.recipe.model import LocalEngine, Provider, Recipe
from runner.results.recorder import RunOutcome
from runner.store import Store


@dataclass(frozen=True)
class Ran:
    """What executing came to: the outcome (None when the run ended before it had
    one), the status sweeps' figures, and whether a signal interrupted it."""

    outcome: RunOutcome | None
    interrupted: bool
    status_pages: int = 0
    peak_budget_share: float = 0.0
    # Every request sent again, by kind (uploads, transcriptions, polls, llm, lemur),
    # over every client of the run: what the summary counts.
    retries: Mapping[str, int] = field(default_factory=dict)


def execute(
    recipes: Sequence[Recipe], setup: RunConfig, progress: ProgressDisplay, state_dir: Path
) -> Ran:
    """Run ``recipes`` on the services ``setup`` describes, with the state store in
    ``state_dir``, until they finish, a signal stops them, or the timeout ends them."""
    config, options = setup.client, setup.options
    executor: Executor | None = None
    sweeper: StatusSweeper | None = None

    secrets = _run_secrets(recipes, config)
    recipes = [_recorded_safely(recipe, secrets) for recipe in recipes]
    clients: list[HttpClient] = []

    def kept(client: HttpClient) -> HttpClient:
        """Every client the run makes, counted in its summary's retries by kind."""
        clients.append(client)
        return client

    async def main(store: Store) -> None:
        nonlocal executor, sweeper
        # The rates the last run learned pace this one from its first request; only the
        # AssemblyAI client is given them (a provider's gates are its own).
        known = replace(config, known_rates=await store.call(store.rates))
        # One budget of bytes being read for every client: answers held at once are
        # bounded across the run, not per server.
        budget = ByteBudget()
        async with (
            HttpClient(known, secrets=secrets, budget=budget) as http,
            contextlib.AsyncExitStack() as servers,
        ):
            _stop_on_signals(http)
            kept(http)
            services = offline_services() if options.offline else _services(http, config)
            # One client per server for the whole run: its limits hold across the run.
            providers = {
                provider.key: GatewayClient(
                    kept(
                        await servers.enter_async_context(
                            _provider_client(provider, config, secrets, budget)
                        )
                    )
                )
                for provider in _providers(recipes)
            }
            speech = {
                engine.server: SpeechClient(
                    kept(
                        await servers.enter_async_context(
                            _speech_client(engine, config, secrets, budget)
                        )
                    )
                )
                for engine in _speech_servers(recipes)
            }
            services = replace(services, providers=providers, speech=speech)
            if isinstance(services.transcripts, TranscriptsClient):
                sweeper = services.transcripts.sweeper
            executor = Executor(services, options, progress, store)
            try:
                await executor.run(recipes)
            finally:
                learned.update(http.learned_rates())
                if sweeper is not None:
                    await sweeper.close()

    interrupted = False
    learned: dict[str, Rate] = {}  # what the Gateway's headers said, for the next plan
    with _tuned_garbage_collection(), Store(state_dir) as store:
        try:
            asyncio.run(main(store))
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
        for gate, rate in learned.items():
            store.rate_put(gate, rate.limit, rate.window)
    return Ran(
        executor.outcome if executor is not None else None,
        interrupted,
        status_pages=sweeper.requests if sweeper else 0,
        peak_budget_share=sweeper.peak_budget_share if sweeper else 0.0,
        retries=_retries(clients),
    )


def _retries(clients: Sequence[HttpClient]) -> dict[str, int]:
    """The requests every client sent again, by kind."""
    counted: Counter[str] = Counter()
    for client in clients:
        counted.update(client.snapshot().retries_by_family)
    return {kind: n for kind, n in counted.items() if n}


@contextmanager
def _tuned_garbage_collection() -> Iterator[None]:
    """Keep the collector from stalling the event loop in long runs; as it was after.

    Measured at 10,000 items: full collections of the objects a run keeps (modules,
    recipes, items, connections) took 80 to 160 ms each, freed nothing, and came
    every few seconds, each one a stall of every request. What exists before the run
    is frozen out of collections, and collections come less often (memory stayed at
    about 100 MB: a run makes few reference cycles).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _recorded_safely(recipe: Recipe, secrets: Secrets) -> Recipe:
    """``recipe`` with the command line's vars as run.json records them: a value that
    holds a key this run sends is redacted there (the prompts still use the vars)."""
    if not recipe.var_overrides or not secrets:
        return recipe
    return replace(recipe, var_overrides=secrets.redact_data(dict(recipe.var_overrides)))


def _providers(recipes: Sequence[Recipe]) -> list[Provider]:
    """The OpenAI-compatible servers the recipes declare or their tasks use (--llm-url's),
    each once."""
    found: dict[str, Provider] = {}
    for recipe in recipes:
        for provider in recipe.providers.values():
            found.setdefault(provider.key, provider)
        for task in recipe.tasks.values():
            if task.provider is not None:
                found.setdefault(task.provider.key, task.provider)
    return list(found.values())


def _speech_servers(recipes: Sequence[Recipe]) -> list[LocalEngine]:
    """The speech servers the recipes transcribe on (``engine: openai-compatible``),
    each once."""
    found: dict[str, LocalEngine] = {}
    engines = [
        engine
        for recipe in recipes
        for engine in (recipe.local_engine, *(b.local_engine for b in recipe.compared))
    ]
    for engine in engines:
        if engine is not None and engine.engine == "openai-compatible":
            found.setdefault(engine.server, engine)
    return list(found.values())


def _run_secrets(recipes: Sequence[Recipe], config: ClientConfig) -> Secrets:
    """Every key this run may send, each client redacting all of them from what its
    server says: AssemblyAI's, each provider's and speech server's, --llm-url's."""
    servers = [
        *(provider.api_key_env for provider in _providers(recipes)),
        *(engine.api_key_env for engine in _speech_servers(recipes)),
    ]
    names = {LLM_KEY_ENV, *(name for name in servers if name)}
    return Secrets([config.api_key, *(_key(name) for name in names)])


def _key(name: str) -> str:
    return os.environ.get(name, "").strip()


def _provider_client(
    provider: Provider, config: ClientConfig, secrets: Secrets, budget: ByteBudget
) -> HttpClient:
    """A client of its own for ``provider``, its URL the Gateway's."""
    own = replace(config, gateway_url=provider.base_url)
    return _server_client(own, secrets, budget, provider.api_key_env, provider.headers)


def _speech_client(
    engine: LocalEngine, config: ClientConfig, secrets: Secrets, budget: ByteBudget
) -> HttpClient:
    """A client of its own for a speech server, its URL the REST API's."""
    own = replace(config, base_url=(engine.base_url or "").rstrip("/"))
    return _server_client(own, secrets, budget, engine.api_key_env)


def _server_client(
    config: ClientConfig,
    secrets: Secrets,
    budget: ByteBudget,
    key_env: str | None,
    headers: Mapping[str, str] | None = None,
) -> HttpClient:
    """A client for a server a recipe names: its key (``Bearer``) or none, never the
    AssemblyAI key nor a variable no one allowed (``validate`` says so at its line;
    this is the last guard), and the same limits and retry policy."""
    problem = key_variable_problem(key_env, os.environ) if key_env else None
    if problem is not None:
        raise ConfigurationError(problem)
    key = _key(key_env) if key_env else ""
    # A server of one's own that is down or broken fails its work in seconds, not the
    # two minutes AssemblyAI's retry budget allows.
    retry = replace(config.retry, max_retries=2, budget=15.0)
    own = replace(config, api_key="", retry=retry)
    authorization = f"Bearer {key}" if key else None
    return HttpClient(
        own,
        authorization=authorization,
        assemblyai=False,
        headers=headers,
        secrets=secrets,
        budget=budget,
    )


def _services(http: HttpClient, config: ClientConfig) -> Services:
    """AssemblyAI's services over ``http``."""
    return Services(
        transcripts=TranscriptsClient(http, config),
        gateway=GatewayClient(http, config),
        lemur=LemurClient(http, config),
    )


def _stop_on_signals(http: HttpClient) -> None:
    """Ctrl-C and SIGTERM (how CI systems cancel a job): stop sending, keep, report.

    Nothing more is sent from the first signal on: a request still waiting for its
    turn is dropped (a submission's intent is closed, as nothing left). A submission on
    the wire is waited for (30 s at most) so its job is recorded, and an LLM reply on
    the wire (5 s at most) so it is cached; other requests are abandoned.
    Cancelling the main task lets the executor close the manifest and write the reports
    instead of leaving ``run.json.partial``. A second signal changes nothing: the
    ledger writes it would cut short are what keeps the rerun from paying twice.
    """
    task = asyncio.current_task()
    if task is None:
        return
    stopping: list[int] = []

    def stop(signum: int) -> None:
        if stopping:
            print(
                "Stopping: waiting (at most 30 s) for submissions already sent, so that "
                "their jobs are recorded and the rerun does not pay for them again.",
                file=sys.stderr,
            )
            return
        stopping.append(signum)
        http.stop_sending()
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError):  # not on this platform or thread
            return
