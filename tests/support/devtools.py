"""Just enough of the Chrome DevTools protocol to drive one headless Chromium page.

Spoken directly over the browser's websocket with aiohttp's client, so the browser tests
need no dependency beyond the Debian `chromium` package. One `Chromium` process per
test, with its own throw-away profile; `Tab` is one page attached in flat session mode.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

# Without the background-networking flags Chromium dials out at start and, with no
# route to the internet here, its own connections are refused.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
TIMEOUT = 60.0


class DevToolsError(RuntimeError):
    """The browser answered a command with an error, or a page script threw."""


class Chromium:
    """A running headless Chromium and the websocket to its browser target."""

    def __init__(
        self, process: asyncio.subprocess.Process, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        self.process = process
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            for waiter in list(self._waiters):
                method, session, future = waiter
                if data.get("method") == method and data.get("sessionId") == session:
                    self._waiters.remove(waiter)
                    if not future.done():
                        future.set_result(data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DevToolsError("the browser closed its websocket"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; the `result` object."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, TIMEOUT)
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def expect(self, method: str, session: str | None) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `method` event; ask for it before causing the event."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session, future))
        return future

    async def new_tab(self) -> Tab:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        tab = Tab(self, attached["sessionId"])
        await tab.call("Page.enable")
        return tab

    async def close(self) -> None:
        with contextlib.suppress(DevToolsError, TimeoutError, ConnectionError):
            await asyncio.wait_for(self.send("Browser.close"), 10)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Tab:
    """One page of the browser, driven through its flat-mode session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        return self.browser.expect(method, self.session)

    async def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        loaded = self.expect("Page.loadEventFired")
        await self.call("Page.navigate", url=url)
        await asyncio.wait_for(loaded, TIMEOUT)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a script run in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise DevToolsError(f"script failed: {text}")
        return result["result"].get("value")

    async def viewport(self, width: int, height: int) -> None:
        """A desktop-style viewport of exactly this many CSS pixels (no mobile zoom-out,
        which would hide an overflow by widening the layout)."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def color_scheme(self, scheme: str) -> None:
        await self.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    async def press_tab(self) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Tab",
                code="Tab",
                windowsVirtualKeyCode=9,
            )

    async def screenshot(self) -> bytes:
        """The whole page as PNG, at the current viewport width."""
        size = await self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = await self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        )
        return base64.b64decode(shot["data"])


@contextlib.asynccontextmanager
async def chromium(binary: str, profile: Path) -> AsyncIterator[Chromium]:
    """Start `binary` headless with a fresh profile in `profile`; stop it on exit.

    Chromium writes the port it picked to `DevToolsActivePort` in its profile; its
    stderr goes to `<profile>-chromium.log` beside it, quoted if it never gets that far.
    """
    log_path = profile.parent / f"{profile.name}-chromium.log"
    with _fresh_profile(profile, log_path) as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        url = await _browser_url(profile / "DevToolsActivePort", process, log_path)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, max_msg_size=64 * 2**20) as ws,
        ):
            browser = Chromium(process, ws)
            try:
                yield browser
            finally:
                await browser.close()
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _fresh_profile(profile: Path, log_path: Path) -> BinaryIO:
    profile.mkdir(parents=True, exist_ok=True)
    return log_path.open("wb")


def _read_small(path: Path) -> str:
    # Small local files (the port file, Chromium's log): reading them holds up nothing.
    return path.read_text(errors="replace") if path.exists() else ""


async def _browser_url(port_file: Path, process: asyncio.subprocess.Process, log: Path) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loop.time() < deadline and process.returncode is None:
        lines = _read_small(port_file).splitlines()
        if len(lines) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.05)  # polling for the file Chromium writes once it listens
    tail = _read_small(log)[-2000:]
    raise DevToolsError(
        f"chromium did not open its DevTools port (exit {process.returncode}):\n{tail}"
    )
