"""The one door to the Kubernetes API: client factory, typed errors, rate limiting, raw list/watch.

Why not the generated API classes: they deserialise every object into model instances, which is slow
and loses nothing we need to keep; kruisebus decodes response bytes with msgspec straight into the
`schemas` Structs. We still go through the real `kubernetes-asyncio` `ApiClient` for configuration,
authentication, TLS and the connection pool, so anything that works with kubectl's kubeconfig works
here.

Errors are mapped from HTTP status into the project's one error tree (`services.errors`, like kopf's)
so callers write an `except` ladder instead of inspecting `ApiException.status`; every write passes a
token bucket and honours 429 `Retry-After`, because a controller that floods the API server during a
large rollout is a bad citizen. Every typed call is an OpenTelemetry CLIENT span (`patch pods/status`),
with the caller's attributes, so an API call shows up under whatever span made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from yarl import URL

from schemas.messages import Resource
from services import metrics, telemetry
from services.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeGone,
    KubeInvalid,
    KubeNotFound,
    KubeServerError,
    KubeTooManyRequests,
)
from services.settings import KubeSettings

log = logging.getLogger(__name__)

PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


# --- errors ----------------------------------------------------------------------------------------


class StatusDetails(msgspec.Struct, omit_defaults=True):
    name: str = ""
    kind: str = ""
    causes: list[dict[str, str]] = []


class StatusBody(msgspec.Struct, omit_defaults=True):
    """Kubernetes' `Status` error body."""

    message: str = ""
    reason: str = ""
    code: int = 0
    details: StatusDetails | None = None


def _error_for(status: int, raw: bytes, headers: Mapping[str, str] | None = None) -> KubeError:
    try:
        body: StatusBody | None = msgspec.json.decode(raw, type=StatusBody) if raw else None
    except msgspec.DecodeError:
        body = None
    message = body.message if body and body.message else raw.decode(errors="replace")[:500]
    reason = body.reason if body else ""  # the Status reason, e.g. AlreadyExists
    cls: type[KubeError]
    if status == 404:
        cls = KubeNotFound
    elif status == 409:
        cls = KubeConflict
    elif status == 422:
        cls = KubeInvalid
    elif status == 410:
        cls = KubeGone
    elif status == 429:
        cls = KubeTooManyRequests
    elif status in (401, 403):
        cls = KubeForbidden
    else:
        cls = KubeServerError
    err = cls(status, message, reason, body)
    if isinstance(err, KubeTooManyRequests):
        try:
            err.retry_after = float((headers or {}).get("Retry-After", "1"))
        except ValueError:
            err.retry_after = 1.0
        err.delay = err.retry_after
    return err


def is_precondition_failure(err: KubeError, *, tested: bool) -> bool:
    """Does this error say the caller's view of the object was stale (so the decision was)?

    404: the object is gone; 409: a stale resourceVersion, a failed uid precondition or a concurrent
    writer; 422 on a JSON patch with `test` operations (`tested`): a failed `test` is a 422 whose message
    is not a field validation error.
    """
    if isinstance(err, KubeNotFound | KubeConflict):
        return True
    if isinstance(err, KubeInvalid) and tested:
        msg = err.message.lower()
        return "test" in msg or "rejected our request" in msg
    return False


# --- rate limiting ---------------------------------------------------------------------------------


class TokenBucket:
    """qps tokens per second, at most `burst` saved up; `acquire` waits for one."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self.throttled_seconds = 0.0

    async def acquire(self) -> None:
        if self.qps <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.qps
                self.throttled_seconds += wait
                metrics.KUBE_THROTTLED.inc(wait)
                await asyncio.sleep(wait)
                self._stamp = time.monotonic()
                self._tokens = 0.0
            else:
                self._tokens -= 1


_VERB_OF_METHOD = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def _resource_label(resource: Resource, subresource: str = "") -> str:
    return f"{resource.plural}/{subresource}" if subresource else resource.plural


# --- paths -----------------------------------------------------------------------------------------


def resource_path(resource: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str = "") -> str:
    base = "/api/v1" if not resource.group else f"/apis/{resource.group}/{resource.version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{resource.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 - wire name
    # `continue` is a keyword; paging is not used (the sim and small clusters return everything)


class ListEnvelope(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] = []


class WatchEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw


_LIST_DECODER = msgspec.json.Decoder(ListEnvelope)
_WATCH_DECODER = msgspec.json.Decoder(WatchEvent)


# --- the client ------------------------------------------------------------------------------------


class Kube:
    """A shared kubernetes-asyncio ApiClient plus typed errors and a write rate limiter."""

    def __init__(self, api: client.ApiClient, *, qps: float = 0.0, burst: int = 100,
                 retries: int = 5, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.api = api
        self.limiter = TokenBucket(qps, burst)
        self.retries = retries
        self.tracer = telemetry.get_tracer(tracer_provider)
        self._session: aiohttp.ClientSession | None = None
        self._extra: dict[str, Any] = {}

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, *, qps: float = 0.0, burst: int = 100,
                      tracer_provider: trace.TracerProvider | None = None, context: str | None = None) -> Kube:
        """In-cluster config first when running in a pod, else the kubeconfig file (its `context`,
        default its current context)."""
        cfg = client.Configuration()
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                await config.load_kube_config(client_configuration=cfg)
        else:
            await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        cfg.connection_pool_maxsize = 64
        return cls(client.ApiClient(cfg), qps=qps, burst=burst, tracer_provider=tracer_provider)

    @classmethod
    async def connect_with(cls, settings: KubeSettings, *,
                           tracer_provider: trace.TracerProvider | None = None) -> Kube:
        """`connect` with a service's settings (kubeconfig, the write rate limit)."""
        return await cls.connect(settings.kubeconfig, qps=settings.qps, burst=settings.burst,
                                 tracer_provider=tracer_provider)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()  # does not close the shared connector
        await self.api.close()

    def session(self) -> aiohttp.ClientSession:
        """An aiohttp session on the ApiClient's connection pool (its TLS settings included).

        Requests go straight through it instead of `ApiClient.call_api`, whose per-request work
        (deep-copying the body through `sanitize_for_serialization`, stdlib JSON, re-reading the
        proxy environment) more than halved the executor's API call rate. Authentication still comes
        from the ApiClient (`update_params_for_auth`, so refreshed tokens are picked up); proxies are
        read from the configuration or, once, from the environment.
        """
        if self._session is None:
            rest = self.api.rest_client
            cfg = self.api.configuration
            self._session = aiohttp.ClientSession(connector=rest.pool_manager.connector, connector_owner=False,
                                                  trust_env=False, read_bufsize=2**21)
            proxy: object = cfg.proxy
            if not proxy:
                try:
                    proxy, _ = get_env_proxy_for_url(URL(str(cfg.host)))
                except LookupError:
                    proxy = None
            if proxy:
                self._extra["proxy"] = str(proxy)
            if cfg.proxy_headers:
                self._extra["proxy_headers"] = cfg.proxy_headers
            if rest.server_hostname:
                self._extra["server_hostname"] = rest.server_hostname
        return self._session

    async def _send(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    timeout: Any = 30) -> aiohttp.ClientResponse:
        headers = {**self.api.default_headers, "Accept": "application/json", "Content-Type": content_type}
        params = list(query or [])
        if isinstance(timeout, int | float):
            timeout = aiohttp.ClientTimeout(total=timeout)
        try:
            session = self.session()
            await self.api.update_params_for_auth(headers, params, ["BearerToken"])
            url = f"{self.api.configuration.host}{path}"
            if params:
                url += "?" + urlencode(params)
            data = None if body is None else body if isinstance(body, bytes) else msgspec.json.encode(body)
            resp: aiohttp.ClientResponse = await session.request(
                method, url, headers=headers, data=data, timeout=timeout, **self._extra)
        except ApiException as e:
            raise KubeServerError(e.status or 0, str(e.reason)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeServerError(0, f"{type(e).__name__}: {e}") from None
        return resp

    async def request(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
                      body: Any = None, content_type: str = "application/json", verb: str = "",
                      resource: str = "") -> bytes:
        """One API call; retries 429 (after Retry-After) and 5xx/transport errors with backoff.

        Each attempt is counted in `kruisebus_kube_requests_total` by `verb` (default: from the HTTP
        method), `resource` (a plural, with its subresource) and status code (0: no response)."""
        verb = verb or _VERB_OF_METHOD.get(method, method.lower())
        attempt = 0
        while True:
            if method != "GET":
                await self.limiter.acquire()
            code = 0
            started = time.perf_counter()
            try:
                try:
                    resp = await self._send(method, path, query=query, body=body, content_type=content_type)
                    async with resp:
                        code = resp.status
                        data = await resp.read()
                        if 200 <= resp.status < 300:
                            return data
                        raise _error_for(resp.status, data, resp.headers)
                finally:
                    metrics.KUBE_REQUESTS.labels(verb, resource, str(code)).inc()
                    metrics.KUBE_REQUEST_DURATION.labels(verb, resource).observe(time.perf_counter() - started)
            except (KubeTooManyRequests, KubeServerError) as e:
                attempt += 1
                if attempt > self.retries:
                    raise
                delay = e.retry_after if isinstance(e, KubeTooManyRequests) else min(
                    0.1 * 2**attempt, 5.0) * (0.5 + random.random())
                log.debug("retrying %s %s after %.2fs: %s", method, path, delay, e)
                await asyncio.sleep(delay)

    # --- typed verbs -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _span(self, verb: str, resource: Resource, namespace: str | None, name: str | None,
              subresource: str, attributes: Mapping[str, AttributeValue] | None) -> Iterator[None]:
        """A CLIENT span `<verb> <resource>[/<subresource>]`. API errors are outcomes the caller
        handles (stale, throttled, refused): recorded without a traceback (`telemetry.error_event`);
        anything else is a bug and keeps it."""
        attrs: dict[str, AttributeValue] = {"k8s.resource": resource.plural, **(attributes or {})}
        if namespace:
            attrs.setdefault(telemetry.K8S_NAMESPACE, namespace)
        if name and resource.plural == "pods":
            attrs.setdefault(telemetry.K8S_POD_NAME, name)
        sub = f"/{subresource}" if subresource else ""
        with self.tracer.start_as_current_span(
                f"{verb} {resource.plural}{sub}", kind=SpanKind.CLIENT, attributes=attrs,
                record_exception=False, set_status_on_exception=False) as span:
            try:
                yield
            except KubeError as e:
                span.set_attribute("http.response.status_code", e.status)
                span.set_status(Status(StatusCode.ERROR, e.message[:200]))
                telemetry.error_event(span, e)
                raise
            except Exception as e:
                span.set_status(Status(StatusCode.ERROR, str(e)[:200]))
                span.record_exception(e)
                raise

    async def get(self, resource: Resource, namespace: str | None, name: str, *,
                  attributes: Mapping[str, AttributeValue] | None = None) -> bytes:
        with self._span("get", resource, namespace, name, "", attributes):
            return await self.request("GET", resource_path(resource, namespace, name),
                                      resource=_resource_label(resource))

    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None
                   ) -> tuple[list[msgspec.Raw], str]:
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        data = await self.request("GET", resource_path(resource, namespace), query=query, verb="list",
                                  resource=_resource_label(resource))
        env = _LIST_DECODER.decode(data)
        return env.items, env.metadata.resourceVersion

    async def create(self, resource: Resource, namespace: str | None, body: Any, *,
                     attributes: Mapping[str, AttributeValue] | None = None) -> bytes:
        name = body.get("metadata", {}).get("name") if isinstance(body, dict) else None
        with self._span("create", resource, namespace, name, "", attributes):
            return await self.request("POST", resource_path(resource, namespace), body=body,
                                      resource=_resource_label(resource))

    async def patch(self, resource: Resource, namespace: str | None, name: str, patch: Any,
                    patch_type: str, subresource: str = "", *,
                    attributes: Mapping[str, AttributeValue] | None = None) -> bytes:
        with self._span("patch", resource, namespace, name, subresource, attributes):
            return await self.request("PATCH", resource_path(resource, namespace, name, subresource),
                                      body=patch, content_type=PATCH_CONTENT_TYPES[patch_type],
                                      resource=_resource_label(resource, subresource))

    async def delete(self, resource: Resource, namespace: str | None, name: str, *, uid: str = "",
                     resource_version: str = "", grace_period_seconds: int | None = None,
                     propagation_policy: str = "", attributes: Mapping[str, AttributeValue] | None = None) -> bytes:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        pre: dict[str, str] = {}
        if uid:
            pre["uid"] = uid
        if resource_version:
            pre["resourceVersion"] = resource_version
        if pre:
            body["preconditions"] = pre
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        with self._span("delete", resource, namespace, name, "", attributes):
            return await self.request("DELETE", resource_path(resource, namespace, name), body=body,
                                      resource=_resource_label(resource))

    async def watch(self, resource: Resource, resource_version: str, *, namespace: str | None = None,
                    timeout_seconds: int = 300, label_selector: str | None = None,
                    field_selector: str | None = None) -> AsyncIterator[WatchEvent]:
        """Stream watch events from `resource_version`; raises KubeGone when it is too old.

        The stream ends when the server closes it (timeoutSeconds); the caller re-watches from the
        last resourceVersion it saw, which is what makes this loop ours rather than the client's.
        """
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        label = _resource_label(resource)
        try:
            resp = await self._send(
                "GET", resource_path(resource, namespace), query=query,
                timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=timeout_seconds + 60),
            )
        except KubeError:
            metrics.KUBE_REQUESTS.labels("watch", label, "0").inc()
            raise
        metrics.KUBE_REQUESTS.labels("watch", label, str(resp.status)).inc()
        try:  # no `async with`: its exit awaits a clean close, which can hang when cancelled mid-stream
            if resp.status != 200:
                raise _error_for(resp.status, await resp.read(), resp.headers)
            try:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    ev = _WATCH_DECODER.decode(line)
                    if ev.type == "ERROR":
                        status = msgspec.json.decode(ev.object, type=StatusBody)
                        raise _error_for(status.code or 500, bytes(ev.object))
                    yield ev
            except (TimeoutError, aiohttp.ClientError) as e:
                raise KubeServerError(0, f"watch stream broke: {type(e).__name__}: {e}") from None
        finally:
            resp.close()


__all__ = [
    "Kube",
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeGone",
    "KubeInvalid",
    "KubeNotFound",
    "KubeServerError",
    "KubeTooManyRequests",
    "ListEnvelope",
    "TokenBucket",
    "WatchEvent",
    "is_precondition_failure",
    "resource_path",
]
