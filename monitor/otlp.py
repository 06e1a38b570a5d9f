"""`[otlp]`: push what `/metrics` shows to an OTLP/HTTP endpoint every `interval_seconds`.

Each push renders `/metrics` (OpenMetrics, through the same function as a scrape) on the
event loop, then converts and sends it in a worker thread (`monitor.otlp_export`, the
only module that imports OpenTelemetry, loaded at the first push). A push never stops
the daemon: every push is counted in `claude_monitor_otlp_exports_total{result}`, a
failure is logged once per change (`FailureLog`), and polls and the proxy never wait on
one. `[otlp]` follows a reload: a changed section gets a new exporter at the next push,
a removed one stops the pushes. On stop, one last push, then the exporter shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.config_source import ConfigSource
from monitor.failure_log import FailureLog
from monitor.jobs import JobScheduler
from monitor.schema import OtlpConfig

if TYPE_CHECKING:
    from monitor.otlp_export import OtlpSender

log = logging.getLogger("monitor.otlp")

# The `result` label: see `monitor.otlp_export.PushOutcome`.
RESULTS = ("success", "rejected", "unreachable", "error")
JOB_ID = "otlp-push"
_FAILURE_KEY = "otlp"

Render = Callable[[], Awaitable[list[bytes]]]


@dataclass(frozen=True)
class Pushed:
    """How a push ended (`result` as in RESULTS), with the points and requests sent."""

    result: str
    message: str = ""
    points: int = 0
    requests: int = 0


def _open_sender(settings: OtlpConfig, port: int, start_ns: int) -> OtlpSender:
    # The extra is imported here, at the first push, never when `[otlp]` is absent.
    from monitor.otlp_export import OtlpSender, instance_id  # noqa: PLC0415 - the optional extra

    return OtlpSender(settings, instance=instance_id(port), start_ns=start_ns)


class OtlpPush:
    def __init__(
        self,
        config: ConfigSource,
        render: Render,
        jobs: JobScheduler,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._render = render
        self._jobs = jobs
        self._clock = clock
        self._start_ns = int(clock() * 1e9)  # counters without `_created` count from here
        self._sender: OtlpSender | None = None
        self._lock = asyncio.Lock()
        self._running = False
        self._last_start: float | None = None
        self._failures = FailureLog(log, "otlp push", clock)
        self._announced: OtlpConfig | None = None
        self._work = self._job  # one object, so the scheduler moves the job, not re-adds it
        self.exports = dict.fromkeys(RESULTS, 0)

    @property
    def settings(self) -> OtlpConfig | None:
        return self._config.current.otlp

    def start(self) -> None:
        """Push every `interval_seconds` from now on, while `[otlp]` is configured."""
        self._running = True
        self._schedule()

    def config_changed(self) -> None:
        """After a reload: the next push follows the new section (or there is none)."""
        self._schedule()

    def _schedule(self) -> None:
        settings = self.settings
        if self._running and settings != self._announced:
            if settings is None:
                log.info("otlp push off")
            else:
                endpoint, interval = settings.push_endpoint, settings.interval_seconds
                log.info("otlp push to %s every %g s", endpoint, interval)
            self._announced = settings
        if not self._running or settings is None:
            self._jobs.cancel(JOB_ID)
            return
        since = self._last_start if self._last_start is not None else self._clock()
        self._jobs.schedule(JOB_ID, since + settings.interval_seconds, self._work)

    async def _job(self) -> None:
        await self.push()
        self._schedule()

    async def push(self) -> Pushed | None:
        """Push what `/metrics` shows now, at once (None without `[otlp]`). One push at a
        time; whatever goes wrong is counted and logged, never raised."""
        async with self._lock:
            settings = self.settings
            if settings is None:
                await self._close()
                return None
            self._last_start = self._clock()
            pushed = await self._push(settings, int(self._last_start * 1e9))
            self.exports[pushed.result] += 1
            subject = f"endpoint={settings.push_endpoint}"
            if pushed.result == "success":
                self._failures.succeeded(_FAILURE_KEY, subject)
            else:
                self._failures.failed(_FAILURE_KEY, subject, pushed.result, pushed.message)
            return pushed

    async def _push(self, settings: OtlpConfig, now_ns: int) -> Pushed:
        try:
            sender = await self._sender_for(settings)
            chunks = await self._render()
            outcome = await asyncio.to_thread(sender.push, chunks, now_ns)
        except Exception as exc:  # noqa: BLE001 - a bug or an SDK surprise: counted, never fatal
            return Pushed("error", _redacted(f"{type(exc).__name__}: {exc}", settings))
        return Pushed(outcome.result, outcome.message, outcome.points, outcome.requests)

    async def _sender_for(self, settings: OtlpConfig) -> OtlpSender:
        if self._sender is not None and self._sender.config == settings:
            return self._sender
        await self._close()
        port = self._config.current.server.port
        self._sender = await asyncio.to_thread(_open_sender, settings, port, self._start_ns)
        return self._sender

    async def _close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            await asyncio.to_thread(sender.shutdown)

    async def stop(self) -> None:
        """Stop pushing: one last push of the final values (bounded by the exporter's
        timeout), then shut the exporter down."""
        self._running = False
        self._jobs.cancel(JOB_ID)
        if self.settings is not None:
            await self.push()
        async with self._lock:
            await self._close()


def _redacted(message: str, settings: OtlpConfig) -> str:
    """`message` with every configured header value masked."""
    for header in settings.headers.values():
        message = message.replace(header.value.get_secret_value(), "********")
    return message


class OtlpExports(Collector):
    """`claude_monitor_otlp_exports_total{result}`, while `[otlp]` is configured (or
    once anything was pushed)."""

    def __init__(self, push: OtlpPush) -> None:
        self._push = push

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self._push.settings is None and not any(self._push.exports.values()):
            return
        family = CounterMetricFamily(
            "claude_monitor_otlp_exports",
            "OTLP pushes of the metrics by result (success, rejected, unreachable, error).",
            labels=["result"],
        )
        for result, count in self._push.exports.items():
            family.add_metric([result], float(count))
        yield family
