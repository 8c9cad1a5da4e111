"""`kruisebus webhook`: the HTTPS AdmissionReview server, its certificate and its registration.

One process does what Kruise's webhook server and its webhook controller do together: serve
``admission.k8s.io/v1`` reviews, make and renew its own certificate, and keep the ``caBundle`` of its
Mutating/ValidatingWebhookConfigurations current through the Kubernetes API (creating them when
missing). Lookups on the admission path (which pods exist, for podsToDelete) come from an in-memory
view replayed and followed from ``KB_STATE``, so answering never waits on the API server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import msgspec
from aiohttp import web

from schemas.admission import (
    CONVERSION_DECODER,
    KIND_MUTATING_CONFIG,
    KIND_VALIDATING_CONFIG,
    REGISTRATION_API_VERSION,
    REGISTRATION_GROUP,
    REVIEW_DECODER,
    REVIEW_ENCODER,
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReview,
)
from schemas.constants import (
    CONFIGMAP_KRUISE_CONFIGURATION,
    KEY_PATCH_METADATA_WHITELIST,
    LABEL_NAMESPACE_NAME,
    MAX_OBJECT_BYTES,
)
from schemas.messages import (
    STATE_DECODER,
    ConfigMapState,
    NamespaceState,
    PodState,
    Resource,
    RevisionState,
    SidecarSetState,
    StateEvent,
)
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.sizes import too_large
from services.webhook import certs, conversion
from services.webhook.admission import NotSynced, PodView, denied
from services.webhook.endpoints import ENDPOINTS, Context, now_rfc3339, registered

log = logging.getLogger(__name__)

MUTATING_CONFIG_NAME: Final = "kruisebus-mutating-webhook-configuration"
VALIDATING_CONFIG_NAME: Final = "kruisebus-validating-webhook-configuration"
MUTATING_CONFIGS: Final = Resource(group=REGISTRATION_GROUP, version="v1",
                                   plural="mutatingwebhookconfigurations", namespaced=False)
VALIDATING_CONFIGS: Final = Resource(group=REGISTRATION_GROUP, version="v1",
                                     plural="validatingwebhookconfigurations", namespaced=False)
MAX_BODY: Final = 3 * 1024 * 1024  # kube-apiserver's request limit; reviews are never bigger


@dataclass
class WebhookOptions:
    host: str = "127.0.0.1"
    port: int = 0
    service_name: str = "kruisebus-webhook"
    service_namespace: str = "kruisebus-system"
    url_host: str | None = None  # register `url: https://<url_host>:<port>` instead of `service:`
    cert_dir: Path | None = None
    # tls.crt, tls.key and ca.crt issued by someone else (cert-manager's Secret); None: made here
    cert_source: Path | None = None
    cert_poll_seconds: float = 10.0  # how often cert_source is checked for a renewed certificate
    cert_validity: dt.timedelta = dt.timedelta(days=365)
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    pod_hook: bool = False  # also register mpod.kb.io for pod CREATE
    gates: FeatureGates = DEFAULT_GATES


@dataclass
class Stats:
    """The webhook's own handling time per review (decode -> encode), for the benchmark."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    count: int = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1

    def summary(self) -> dict[str, Any]:
        data = sorted(self.samples)
        if not data:
            return {"count": self.count}

        def q(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))] * 1000, 3)

        return {"count": self.count, "samples": len(data), "p50_ms": q(0.5), "p99_ms": q(0.99),
                "max_ms": round(data[-1] * 1000, 3)}


def _webhook_entry(name: str, path: str, rules: list[dict[str, Any]], opts: WebhookOptions,
                   client_config: dict[str, Any], *, mutating: bool) -> dict[str, Any]:
    cc = dict(client_config)
    if "service" in cc:
        cc["service"] = {**cc["service"], "path": path}
    else:
        cc["url"] = cc["url"] + path
    entry: dict[str, Any] = {
        "name": name,
        "clientConfig": cc,
        "rules": rules,
        "failurePolicy": opts.failure_policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": opts.timeout_seconds,
    }
    if mutating:
        entry["reinvocationPolicy"] = "Never"
    return entry




class WebhookServer:
    """Serve reviews over TLS; ``rotate()`` renews the certificate; ``register`` is called with each CA."""

    def __init__(self, opts: WebhookOptions, view: PodView | None = None) -> None:
        self.opts = opts
        self.view = view or PodView()
        self.stats = Stats()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if opts.cert_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kruisebus-webhook-")
            self.cert_dir = Path(self._tmp.name)
        else:
            self.cert_dir = opts.cert_dir
            self.cert_dir.mkdir(parents=True, exist_ok=True)
        self.bundle: certs.CertBundle | None = None
        self.previous_ca: bytes = b""
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.rotations = 0

    # --- certificates ---------------------------------------------------------------------------

    def hosts(self) -> list[str]:
        names = certs.service_dns_names(self.opts.service_name, self.opts.service_namespace)
        extra = [h for h in (self.opts.url_host, "localhost", "127.0.0.1") if h]
        return list(dict.fromkeys(names + extra))

    def ca_bundle(self) -> bytes:
        """The CAs an API server must trust right now: the current one and, during a rotation, the last."""
        assert self.bundle is not None
        return self.bundle.ca_pem + self.previous_ca

    def _load(self, bundle: certs.CertBundle) -> None:
        cert, key = self.cert_dir / "tls.crt", self.cert_dir / "tls.key"
        key.touch(mode=0o600)
        key.write_bytes(bundle.key_pem)
        cert.write_bytes(bundle.cert_pem)
        (self.cert_dir / "ca.crt").write_bytes(bundle.ca_pem)
        self.ssl.load_cert_chain(cert, key)  # later handshakes use the new certificate

    def new_bundle(self) -> certs.CertBundle:
        if self.opts.cert_source is not None:
            return certs.load(self.opts.cert_source)
        return certs.generate(self.hosts(), validity=self.opts.cert_validity)

    # --- HTTP -----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        context = Context(gates=self.opts.gates, view=self.view, now=now_rfc3339)
        for endpoint in registered(pod_hook=True):  # served always; registered per opts.pod_hook
            app.router.add_post(endpoint.path, self._review(partial(endpoint.answer, context=context)))
        app.router.add_post(conversion.PATH, self._convert)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/view", self._view)
        app.router.add_delete("/stats", self._reset_stats)
        return app

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.summary())

    async def _view(self, request: web.Request) -> web.Response:
        """What admission answers from: replayed or not, the SidecarSets (name -> resourceVersion), the
        Namespaces, and whether the patchPodMetadata whitelist is known."""
        return web.json_response({"ready": self.view.ready, "sidecarsets": {
            n: s.metadata.resource_version for n, s in sorted(self.view.sidecarsets.items())},
            "namespaces": sorted(self.view.namespaces), "whitelist": self.view.whitelist is not None})

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response(self.stats.summary())

    def _review(self, answer: Callable[[AdmissionRequest], AdmissionResponse]) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            started = time.perf_counter()
            try:
                review = REVIEW_DECODER.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as e:
                return web.Response(status=400, text=f"invalid AdmissionReview: {e}")
            if review.request is None:
                return web.Response(status=400, text="invalid AdmissionReview: no request")
            oversized = too_large(review.request.object, MAX_OBJECT_BYTES) if review.request.object else None
            try:
                response = denied(review.request.uid, 422, str(oversized)) if oversized else answer(review.request)
            except NotSynced as e:  # the call fails: kube-apiserver applies the failurePolicy
                return web.Response(status=503, text=str(e))
            except Exception as e:  # noqa: BLE001 - a bug answers 500 in the review, never kills the server
                log.exception("admission of %s failed", review.request.uid)
                response = denied(review.request.uid, 500, f"internal error: {e}")
            out = REVIEW_ENCODER.encode(AdmissionReview(api_version=review.api_version, response=response))
            self.stats.add(time.perf_counter() - started)
            return web.Response(body=out, content_type="application/json")

        return handle

    async def _convert(self, request: web.Request) -> web.Response:
        """A CRD ConversionReview (apiextensions.k8s.io/v1): every object to the desired version."""
        body = await request.read()
        try:
            review = CONVERSION_DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as e:
            log.warning("invalid ConversionReview: %s", e)
            return web.Response(status=400, text=f"invalid ConversionReview: {e}")
        if review.request is None:
            return web.Response(status=400, text="invalid ConversionReview: no request")
        return web.Response(body=REVIEW_ENCODER.encode(conversion.answer(review)), content_type="application/json")

    async def start(self) -> int:
        self.bundle = self.new_bundle()
        self._load(self.bundle)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.opts.host, self.opts.port, ssl_context=self.ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()

    # --- registration ---------------------------------------------------------------------------

    def client_config(self) -> dict[str, Any]:
        ca = base64.b64encode(self.ca_bundle()).decode()
        if self.opts.url_host:
            return {"url": f"https://{self.opts.url_host}:{self.port}", "caBundle": ca}
        return {"service": {"namespace": self.opts.service_namespace, "name": self.opts.service_name,
                            "port": 443}, "caBundle": ca}

    def configurations(self) -> list[tuple[Resource, dict[str, Any]]]:
        """The two configuration objects this webhook needs, with the current caBundle."""
        cc = self.client_config()
        entries = registered(self.opts.pod_hook)
        mutating = [_webhook_entry(e.name, e.path, e.rules(), self.opts, cc, mutating=True)
                    for e in entries if e.mutating]
        validating = [_webhook_entry(e.name, e.path, e.rules(), self.opts, cc, mutating=False)
                      for e in entries if not e.mutating]
        return [
            (MUTATING_CONFIGS, {"apiVersion": REGISTRATION_API_VERSION, "kind": KIND_MUTATING_CONFIG,
                                "metadata": {"name": MUTATING_CONFIG_NAME}, "webhooks": mutating}),
            (VALIDATING_CONFIGS, {"apiVersion": REGISTRATION_API_VERSION, "kind": KIND_VALIDATING_CONFIG,
                                  "metadata": {"name": VALIDATING_CONFIG_NAME}, "webhooks": validating}),
        ]

    async def register(self, kube: Any) -> None:
        """Create the configurations, or reconcile them with the endpoint table: each of our webhooks
        (by name) is written whole (clientConfig with the current CA, rules, policies), one we no longer
        serve (the pod hook switched off) is removed, anybody else's entry is kept as it is."""
        for resource, desired in self.configurations():
            await self._reconcile(kube, resource, desired)
        await self.register_conversion(kube)

    async def register_conversion(self, kube: Any) -> None:
        """Point the conversion of every CRD served in two versions (DaemonSet, SidecarSet) at this
        webhook with the current caBundle, as Kruise's webhook controller does for its CRDs. A CRD that
        is not installed is skipped: its kind is then simply not served."""
        from services.kube import KubeNotFound

        wanted = conversion.crd_conversion(self.client_config())
        for entry in conversion.CONVERTED:
            try:
                current = msgspec.json.decode(await kube.get(conversion.CRDS, None, entry.crd_name))
            except KubeNotFound:
                log.warning("CRD %s not installed: its conversion is not registered", entry.crd_name)
                continue
            if (current.get("spec") or {}).get("conversion") == wanted:
                continue
            # a merge patch replaces `webhook.clientConfig` key by key: null out what is not wanted
            # (`url` after a switch to `service`, or the other way round)
            cc = dict(wanted["webhook"]["clientConfig"])
            for key in ("url", "service"):
                cc.setdefault(key, None)
            patch = {"spec": {"conversion": {**wanted, "webhook": {**wanted["webhook"], "clientConfig": cc}}}}
            await kube.patch(conversion.CRDS, None, entry.crd_name, patch, patch_type="merge")

    async def _reconcile(self, kube: Any, resource: Resource, desired: dict[str, Any], *, attempts: int = 5) -> None:
        from services.kube import KubeConflict, KubeNotFound

        ours = {e.name for e in ENDPOINTS}
        name = desired["metadata"]["name"]
        for attempt in range(attempts):
            try:
                current = msgspec.json.decode(await kube.get(resource, None, name))
            except KubeNotFound:
                try:
                    await kube.create(resource, None, desired)
                    return
                except KubeConflict:  # another replica created it meanwhile: reconcile that one
                    continue
            foreign = [w for w in current.get("webhooks") or [] if w.get("name") not in ours]
            webhooks = foreign + desired["webhooks"]
            if webhooks == current.get("webhooks"):
                return
            # a merge patch replaces the list whole; with the resourceVersion a concurrent writer's
            # change (another replica's rotation) makes this patch fail and be redone on top of it
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                     "webhooks": webhooks}
            try:
                await kube.patch(resource, None, name, patch, patch_type="merge")
                return
            except KubeConflict:
                if attempt == attempts - 1:
                    raise
        raise RuntimeError(f"{resource.plural}/{name}: created and deleted by others {attempts} times; not registered")

    async def rotate(self, kube: Any | None) -> None:
        """New CA + certificate: publish both CAs, then serve the new certificate."""
        assert self.bundle is not None
        new = self.new_bundle()
        self.previous_ca = self.bundle.ca_pem
        old, self.bundle = self.bundle, new
        try:
            if kube is not None:
                await self.register(kube)
        except Exception:
            self.bundle, self.previous_ca = old, b""
            raise
        self._load(new)
        self.rotations += 1
        log.info("webhook certificate renewed; valid until %s", new.not_after.isoformat())

    async def keep_renewed(self, kube: Any | None, stop: asyncio.Event) -> None:
        """Renew when a third of the validity is left; retry a failed renewal a few seconds later.
        With `cert_source`, serve (and register the CA of) each new certificate its issuer writes."""
        if self.opts.cert_source is not None:
            await self._follow_source(kube, stop)
            return
        while not stop.is_set():
            assert self.bundle is not None
            wait = max(0.05, self.bundle.remaining() - self.opts.cert_validity.total_seconds() / 3)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)  # a timer until renewal is due, not a condition
            if stop.is_set():
                return
            try:
                await self.rotate(kube)
            except Exception:
                log.exception("certificate renewal failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    async def _follow_source(self, kube: Any | None, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.opts.cert_poll_seconds)  # a file poll interval
            if stop.is_set():
                return
            try:
                current = certs.load(self.opts.cert_source) if self.opts.cert_source else None
            except ValueError as e:  # mid-update by the kubelet: the next poll sees the whole Secret
                log.warning("%s", e)
                continue
            assert self.bundle is not None
            if current is not None and current.cert_pem != self.bundle.cert_pem:
                try:
                    await self.rotate(kube)
                except Exception:
                    log.exception("serving the renewed certificate failed; retrying")

    # --- state view -----------------------------------------------------------------------------

    async def on_state(self, event: StateEvent, msg: object = None) -> None:
        if isinstance(event, PodState):
            if event.deleted:
                self.view.drop(event.object)
            else:
                self.view.put(event.object)
        elif isinstance(event, SidecarSetState):
            if event.deleted:
                self.view.sidecarsets.pop(event.object.metadata.name, None)
            else:
                self.view.sidecarsets[event.object.metadata.name] = event.object
        elif isinstance(event, NamespaceState):
            name = event.object.metadata.name
            if event.deleted:
                self.view.namespaces.pop(name, None)
            else:  # kube-apiserver (1.21+) labels every namespace with its name
                self.view.namespaces[name] = {LABEL_NAMESPACE_NAME: name, **event.object.metadata.labels}
        elif isinstance(event, ConfigMapState):
            meta = event.object.metadata
            if (meta.namespace, meta.name) == (self.view.kruise_namespace, CONFIGMAP_KRUISE_CONFIGURATION):
                self.view.whitelist = None if event.deleted else event.object.data.get(KEY_PATCH_METADATA_WHITELIST)
        elif isinstance(event, RevisionState):
            key = (event.object.metadata.namespace, event.object.metadata.name)
            if event.deleted:
                self.view.revisions.pop(key, None)
            else:
                self.view.revisions[key] = event.object


async def follow_state(server: WebhookServer, connect: Callable[[], Awaitable[Any]], stop: asyncio.Event,
                       *, retry: float = 1.0) -> None:
    """Keep the pod view from KB_STATE: connect, replay, follow; on a failure (NATS down at start, the
    stream not created yet) try again. Admission never waits for this: until the first replay is done
    the view is not `ready` and the podsToDelete rule answers with a warning."""
    while not stop.is_set():
        connecting = asyncio.ensure_future(connect())  # the client may retry forever: race it with stop
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            return
        try:
            bus = connecting.result()
        except Exception as e:  # noqa: BLE001 - NATS may be down; the webhook serves regardless
            log.warning("state stream unavailable (%s); retrying", e)
        else:
            replayed = asyncio.Event()

            async def mark_ready(replayed: asyncio.Event = replayed) -> None:
                await replayed.wait()
                server.view.ready = True

            marker = asyncio.create_task(mark_ready())
            try:
                await bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=server.on_state,
                                replayed=replayed, stop=stop)
            except Exception as e:  # noqa: BLE001
                log.warning("following the state stream failed (%s); retrying", e)
            finally:
                marker.cancel()
                with contextlib.suppress(Exception):
                    await bus.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry)  # back off before the next attempt


async def run_webhook(bus: Any, kube: Any | None, opts: WebhookOptions, *, stop: asyncio.Event,
                      ready_file: Path | None = None, server: WebhookServer | None = None,
                      connect_bus: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Serve until `stop`: TLS server, registration, renewal, and the state view from KB_STATE (from
    `bus`, or from connections `connect_bus` makes, retried while NATS is unavailable)."""
    server = server or WebhookServer(opts)
    await server.start()
    try:
        async with asyncio.TaskGroup() as tg:
            if connect_bus is None and bus is not None:
                async def existing() -> Any:
                    return _Borrowed(bus)

                connect_bus = existing
            if connect_bus is not None:
                tg.create_task(follow_state(server, connect_bus, stop))
            else:
                server.view.ready = True  # no state stream: nothing to check names against
            if kube is not None:
                await server.register(kube)
            log.info("webhook serving on %s:%d", opts.host, server.port)
            if ready_file is not None:
                tmp = ready_file.with_suffix(".tmp")
                tmp.write_text(msgspec.json.encode({"port": server.port}).decode())
                tmp.replace(ready_file)
            tg.create_task(server.keep_renewed(kube, stop))
            await stop.wait()
    finally:
        await server.close()


class _Borrowed:
    """A caller's Bus handed to `follow_state`, which closes what it connects: closing this is a no-op."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus
        self.subjects = bus.subjects
        self.watch = bus.watch

    async def close(self) -> None:
        return None
