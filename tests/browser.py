"""A headless Chromium driven over the DevTools protocol, for tests of report.html.

Debian's ``chromium`` package (.ci/run installs it) and aiohttp's websocket client:
no driver download, nothing from the network (the flags keep Chromium off it). The
test opens a page, reads what the console said, runs a line of script, and keeps a
screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--window-size=1100,1400",
]


class Browser:
    """One Chromium and one page. ``errors`` collects console errors and exceptions."""

    def __init__(self) -> None:
        assert CHROMIUM is not None, "chromium is not installed"
        # Chromium's helper processes can still write to the profile as it is removed.
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: stopped with all its helpers
            # Its sockets' folders too, which it leaves behind when stopped.
            env={**os.environ, "TMPDIR": self._profile.name},
        )
        self.errors: list[str] = []
        self._drain: threading.Thread | None = None
        self._ids = 0
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None

    def _endpoint(self) -> str:
        assert self._process.stderr is not None
        stream = self._process.stderr
        for line in stream:
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                # Keep reading what it says, so a full pipe never blocks it.
                self._drain = threading.Thread(target=stream.read, daemon=True)
                self._drain.start()
                return found.group(1)
        raise RuntimeError("chromium did not start its DevTools endpoint")

    async def __aenter__(self) -> Browser:
        try:
            return await self._connect()
        except BaseException:
            await self.__aexit__()
            raise

    async def _connect(self) -> Browser:
        browser_ws = await asyncio.to_thread(self._endpoint)
        port = re.search(r":(\d+)/", browser_ws)
        assert port is not None
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port.group(1)}/json") as response:
            pages = await response.json()
        page = next(p for p in pages if p.get("type") == "page")
        self._socket = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Runtime.enable")
        await self.send("Log.enable")
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)
        # Its pipe ends with it: read to the end, then closed (a warning otherwise).
        if self._drain is not None:
            self._drain.join(10)
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._profile.cleanup()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are read for errors."""
        assert self._socket is not None
        self._ids += 1
        ident = self._ids
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads((await self._socket.receive(timeout=30)).data)
            self._note(message)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(str(params["entry"].get("text")))

    async def open(self, path: Path) -> None:
        await self.send("Page.navigate", url=path.resolve().as_uri())
        for _ in range(100):  # until the document has loaded
            state = await self.evaluate("document.readyState")
            if state == "complete":
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{path} did not load")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> Path:
        """The whole page, not only the window."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = await self.send(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
