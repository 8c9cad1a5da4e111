"""The small HTTP server every service runs beside its work: `/metrics`, `/healthz`, `/readyz`.

Kubernetes needs a liveness and a readiness answer from each Pod and Prometheus needs a scrape
target; one plain-HTTP listener per process (`--metrics-port`, off by default) serves all three so a
Pod has one port to declare. Readiness and liveness are callables the service supplies (what "ready"
means differs: the bus connected, a lease held, informers synced), so this module knows nothing about
them; a service that supplies none is live while its event loop answers and ready likewise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], bool]


def _always() -> bool:
    return True


class HealthServer:
    """`/metrics` (Prometheus text format), `/healthz` (live) and `/readyz` (ready) on host:port.

    `ready` and `live` are called on every probe; they must be cheap and not block. Either may be
    replaced after start (`server.ready = ...`), so a service can register its check once it has
    built the thing the check looks at.
    """

    def __init__(self, host: str, port: int, *, ready: Check | None = None, live: Check | None = None) -> None:
        self.host = host
        self.port = port
        self.ready: Check = ready or _always
        self.live: Check = live or _always
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        for address in self._runner.addresses:
            self.port = int(address[1])
        log.info("metrics and health on http://%s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @staticmethod
    def _answer(check: Check, what: str) -> web.Response:
        try:
            ok = bool(check())
        except Exception as e:  # a failing check is a "no", said with the reason
            log.warning("%s check failed: %r", what, e)
            return web.Response(status=503, text=f"not {what}: {type(e).__name__}: {e}\n")
        return web.Response(status=200 if ok else 503, text=("ok" if ok else f"not {what}") + "\n")

    async def _healthz(self, _: web.Request) -> web.Response:
        return self._answer(self.live, "live")

    async def _readyz(self, _: web.Request) -> web.Response:
        return self._answer(self.ready, "ready")


__all__ = ["Check", "HealthServer"]
