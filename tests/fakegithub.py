"""GitHub's REST API for issue comments, on 127.0.0.1: what the review comment needs.

``GET/POST /repos/{owner}/{repo}/issues/{number}/comments`` (paged by ``per_page`` and
``page``) and ``PATCH /repos/{owner}/{repo}/issues/comments/{id}``. ``refuse = True``
answers every write with 403, as GitHub answers a fork's read-only token. Every request
is kept in ``history`` (method, path, Authorization header) for the test to read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    authorization: str


@dataclass
class FakeGitHub:
    comments: dict[int, dict[str, object]] = field(default_factory=dict)  # id → comment
    history: list[Seen] = field(default_factory=list)
    refuse: bool = False
    next_id: int = 1000

    def on(self, number: int) -> list[dict[str, object]]:
        """The comments of pull request ``number``, oldest first."""
        return [c for c in self.comments.values() if c["issue"] == number]

    def add(self, number: int, body: str) -> int:
        self.next_id += 1
        self.comments[self.next_id] = {"id": self.next_id, "issue": number, "body": body}
        return self.next_id

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/repos/{owner}/{repo}/issues/{number}/comments", self._list)
        app.router.add_post("/repos/{owner}/{repo}/issues/{number}/comments", self._post)
        app.router.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self._patch)
        return app

    def _seen(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        self.history.append(Seen(request.method, request.path, auth))

    async def _list(self, request: web.Request) -> web.Response:
        self._seen(request)
        per_page = int(request.query.get("per_page", "30"))
        page = int(request.query.get("page", "1"))
        mine = self.on(int(request.match_info["number"]))
        return web.json_response(mine[(page - 1) * per_page : page * per_page])

    async def _post(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.refuse:
            return web.json_response({"message": "Resource not accessible"}, status=403)
        body = (await request.json())["body"]
        new = self.add(int(request.match_info["number"]), body)
        return web.json_response(self.comments[new], status=201)

    async def _patch(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.refuse:
            return web.json_response({"message": "Resource not accessible"}, status=403)
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None:
            return web.json_response({"message": "Not Found"}, status=404)
        comment["body"] = (await request.json())["body"]
        return web.json_response(comment)


@contextmanager
def serve_github(fake: FakeGitHub, *, timeout: float = 5.0) -> Iterator[str]:
    """Serve ``fake`` from a thread on a free loopback port; yields its base URL."""
    ready = threading.Event()
    url: list[str] = []
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        runner = web.AppRunner(fake.make_app(), access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
            loop_box.append((asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="fakegithub", daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise TimeoutError("fake GitHub did not start in time")
    try:
        yield url[0]
    finally:
        loop, stop = loop_box[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
