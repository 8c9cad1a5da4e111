"""Dynamic admission: the sim calls Mutating/ValidatingWebhookConfiguration webhooks like kube-apiserver.

With a webhook configured, `kubectl apply` of an object a webhook rejects must fail at once with
kube-apiserver's words, and a defaulting webhook's patch must be in the stored object, so kruisebus'
webhook can be tested (and demoed) end to end without a real cluster. What is emulated
(``k8s.io/apiserver/pkg/admission/plugin/webhook``):

* matching: ``rules`` (operations, apiGroups, apiVersions, resources with ``*``, ``res/sub``, ``*/sub``,
  ``*/*``; scope), ``namespaceSelector`` (the namespace's labels; a Namespace object's own labels) and
  ``objectSelector`` (new or old object's labels);
* calling: AdmissionReview v1 over HTTPS, verified against ``caBundle``; ``clientConfig.url``, or
  ``clientConfig.service``, which the sim resolves through a Service object in its store: the port
  entry whose ``port`` is the reference's port is dialled at ``127.0.0.1:<targetPort>`` (or at the
  ``host:port`` of the Service annotation ``sim.kruisebus.io/address``), with TLS server name
  ``<name>.<namespace>.svc`` as kube-apiserver checks; ``timeoutSeconds``;
* outcomes: ``failurePolicy`` Fail/Ignore on a failed call, ``sideEffects`` vs ``dryRun``, mutating
  webhooks in configuration-name order before validating ones, JSON patches applied,
  ``reinvocationPolicy: IfNeeded`` (one more round for earlier webhooks when a later one changed the
  object), ``warnings`` returned as ``Warning`` headers, and kube-apiserver's messages:
  ``admission webhook "NAME" denied the request: MESSAGE`` and
  ``Internal error occurred: failed calling webhook "NAME": ...``.

The fast path costs one dict lookup per write: nothing here runs unless a configuration exists.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from schemas.admission import (
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    PATCH_TYPE_JSON,
    AdmissionReview,
    Webhook,
    WebhookClientConfig,
    WebhookConfiguration,
)
from sim import errors
from sim.errors import ApiError
from sim.patch import PatchDecodeError, PatchError, json_patch
from sim.resources import ResourceType
from sim.selectors import match_label_selector_obj
from sim.store import APPLY_PATCH, Store, copy_obj
from sim.webhook_client import CallError, WebhookClient

if TYPE_CHECKING:
    from sim.http import Request, Response, Result
    from sim.server import ApiServer

log = logging.getLogger("sim.admission")

ADDRESS_ANNOTATION: Final = "sim.kruisebus.io/address"
_RESPONSE_DECODER: Final = msgspec.json.Decoder(AdmissionReview)


class _TypeMeta(msgspec.Struct):
    apiVersion: str = ""  # noqa: N815 - the wire name
    kind: str = ""


_GVK_DECODER: Final = msgspec.json.Decoder(_TypeMeta)
_CONFIG_DECODER: Final = msgspec.json.Decoder(WebhookConfiguration)
_WRITE_VERBS: Final = {"create": OP_CREATE, "update": OP_UPDATE, "patch": OP_UPDATE, "delete": OP_DELETE}
_RETRIES: Final = 5


def registration_types() -> list[ResourceType]:
    """The admissionregistration.k8s.io/v1 kinds (and Service, for `clientConfig.service`) the sim serves."""
    return [
        ResourceType(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            namespaced=False,
        ),
        ResourceType(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            namespaced=False,
        ),
        ResourceType(
            "",
            "v1",
            "Service",
            "services",
            "service",
            short_names=["svc"],
            categories=["all"],
            status_subresource=True,
            strategic=True,
        ),
    ]


@dataclass(frozen=True)
class Attributes:
    operation: str
    rt: ResourceType
    subresource: str
    namespace: str
    name: str
    dry_run: bool


class WebhookCallError(Exception):
    """The call failed (transport, TLS, timeout, HTTP status, bad response): failurePolicy decides."""


class Denied(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def _rule_matches(rule: Any, attrs: Attributes) -> bool:
    rt = attrs.rt
    if not (set(rule.operations) & {attrs.operation, "*"}):
        return False
    if not (set(rule.api_groups) & {rt.group, "*"}) or not (set(rule.api_versions) & {rt.version, "*"}):
        return False
    scope = rule.scope or "*"
    if scope == "Cluster" and rt.namespaced or scope == "Namespaced" and not rt.namespaced:
        return False
    for res in rule.resources:
        want_res, _, want_sub = res.partition("/")
        if want_res not in ("*", rt.plural):
            continue
        if attrs.subresource == "" and "/" not in res:
            return True
        if attrs.subresource and want_sub in ("*", attrs.subresource):
            return True
    return False


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    """An absent or empty selector matches everything (unlike `match_label_selector_obj(None, ...)`)."""
    if selector is None:
        return True
    raw = msgspec.to_builtins(selector)
    if not raw:
        return True
    return match_label_selector_obj(raw, labels)


class Admission:
    """The webhook admission chain of one sim API server."""

    def __init__(self, store: Store) -> None:
        self.store = store
        for rt in registration_types():
            if store.lookup(rt.group, rt.version, rt.plural) is None:
                store.register(rt)
        self._mutating = store.rt("mutatingwebhookconfigurations", "admissionregistration.k8s.io")
        self._validating = store.rt("validatingwebhookconfigurations", "admissionregistration.k8s.io")
        self._contexts: dict[bytes, ssl.SSLContext] = {}
        self._decoded: dict[str, tuple[Any, list[Webhook]]] = {}
        self._covers: dict[tuple[Any, ...], bool] = {}
        self.client = WebhookClient()  # keep-alive connections to webhooks (shared with sim/conversion.py)

    # --- which webhooks ---------------------------------------------------------------------------

    def configured(self) -> bool:
        return any(True for _ in self.store.bucket(self._mutating).iter(None)) or any(
            True for _ in self.store.bucket(self._validating).iter(None)
        )

    def covers(self, verb: str, rt: ResourceType, sub: str) -> bool:
        """Whether some webhook's rules name this kind of request (selectors aside). Synchronous and
        cached per configuration version, so writes no webhook is registered for stay on the fast path."""
        if not self.configured():
            return False
        op = _WRITE_VERBS.get(verb)
        if op is None:
            return False
        key = (self._hooks_version(), op, rt.key, sub)
        hit = self._covers.get(key)
        if hit is None:
            attrs = Attributes(op, rt, sub, "", "", False)
            hit = self.any_rule_matches(attrs) or (
                verb == "patch" and self.any_rule_matches(Attributes(OP_CREATE, rt, sub, "", "", False))
            )  # an apply patch may create
            if len(self._covers) > 4096:
                self._covers.clear()
            self._covers[key] = hit
        return hit

    def _hooks_version(self) -> tuple[Any, ...]:
        self._hooks(self._mutating)
        self._hooks(self._validating)
        return (self._decoded[self._mutating.kind][0], self._decoded[self._validating.kind][0])

    def _hooks(self, rt: ResourceType) -> list[Webhook]:
        configs = sorted(self.store.bucket(rt).iter(None), key=lambda o: o["metadata"]["name"])
        key = (rt.kind, tuple(o["metadata"]["resourceVersion"] for o in configs))
        cached = self._decoded.get(rt.kind)
        if cached is not None and cached[0] == key:
            return cached[1]
        out: list[Webhook] = []
        for raw in configs:
            try:
                out.extend(_CONFIG_DECODER.decode(msgspec.json.encode(raw)).webhooks)
            except msgspec.ValidationError as e:
                log.warning("ignoring malformed %s %s: %s", rt.kind, raw["metadata"]["name"], e)
        self._decoded[rt.kind] = (key, out)
        return out

    def any_rule_matches(self, attrs: Attributes) -> bool:
        """Whether any webhook's rules cover the request (selectors aside): the cheap first test."""
        return any(
            any(_rule_matches(r, attrs) for r in hook.rules)
            for rt in (self._mutating, self._validating)
            for hook in self._hooks(rt)
        )

    def matching(
        self, mutating: bool, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> list[Webhook]:
        hooks = self._hooks(self._mutating if mutating else self._validating)
        out = []
        for hook in hooks:
            if not any(_rule_matches(r, attrs) for r in hook.rules):
                continue
            if not (
                _selector_matches(hook.object_selector, _labels(obj))
                or old is not None
                and _selector_matches(hook.object_selector, _labels(old))
            ):
                continue
            if not self._namespace_matches(hook, attrs, obj or old):
                continue
            out.append(hook)
        return out

    def _namespace_matches(self, hook: Webhook, attrs: Attributes, obj: dict[str, Any] | None) -> bool:
        if hook.namespace_selector is None:
            return True
        if attrs.rt.group == "" and attrs.rt.kind == "Namespace":
            return _selector_matches(hook.namespace_selector, _labels(obj))
        if not attrs.rt.namespaced:
            return True
        ns = self.store.try_get(self.store.rt("namespaces"), "", attrs.namespace)
        return _selector_matches(hook.namespace_selector, _labels(ns))

    # --- calling one webhook ----------------------------------------------------------------------

    def ssl_context(self, ca_bundle: bytes | None) -> ssl.SSLContext:
        key = ca_bundle or b""
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            if ca_bundle:
                ctx.load_verify_locations(cadata=ca_bundle.decode())
            self._contexts[key] = ctx
        return ctx

    def target(self, cc: WebhookClientConfig) -> tuple[str, str, str | None]:
        """(URL shown in messages, URL dialled, TLS server name) of a webhook's clientConfig (an
        admission webhook's or a CRD conversion webhook's: the same shape)."""
        if cc.url:
            return cc.url, cc.url, None
        ref = cc.service
        if ref is None:
            raise WebhookCallError("webhook has no url and no service")
        path = ref.path or ""
        shown = f"https://{ref.name}.{ref.namespace}.svc:{ref.port}{path}"
        svc = self.store.try_get(self.store.rt("services"), ref.namespace, ref.name)
        if svc is None:
            raise WebhookCallError(f'service "{ref.name}" not found')
        address = (svc["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION)
        if not address:
            for port in (svc.get("spec") or {}).get("ports") or []:
                if port.get("port") == ref.port:
                    target = port.get("targetPort", ref.port)
                    address = f"127.0.0.1:{target}"
                    break
            else:
                raise WebhookCallError(f"service {ref.namespace}/{ref.name} has no port {ref.port}")
        return shown, f"https://{address}{path}", f"{ref.name}.{ref.namespace}.svc"

    async def post_review(self, url: str, body: bytes, *, shown: str, ca_bundle: bytes | None,
                          server_name: str | None, timeout: int) -> bytes:
        """POST a review (admission or conversion) to a webhook and return the 200 answer's body.

        Every failure is a `WebhookCallError` in kube-apiserver's words, starting `Post "<url>?timeout=Ns"`;
        each caller puts its own prefix in front (`failed to call webhook: `, `conversion webhook for ...`).
        """
        post = f'Post "{shown}?timeout={timeout}s"'
        try:
            status, raw = await self.client.post(
                f"{url}{'&' if '?' in url else '?'}timeout={timeout}s",
                body,
                ssl_context=self.ssl_context(ca_bundle),
                server_hostname=server_name,
                timeout=timeout,
            )
        except TimeoutError:
            raise WebhookCallError(f"{post}: context deadline exceeded") from None
        except CallError as e:
            raise WebhookCallError(f"{post}: {e}") from None
        if status != 200:
            raise WebhookCallError(f"{post}: unexpected status {status}: {raw[:200]!r}")
        return raw

    async def _call(
        self, hook: Webhook, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> Any:
        shown, url, server_name = self.target(hook.client_config)
        timeout = hook.timeout_seconds or 10
        rt = attrs.rt
        request = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "resource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "requestKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "requestResource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "name": attrs.name,
            "namespace": attrs.namespace,
            "operation": attrs.operation,
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": obj,
            "oldObject": old,
            "dryRun": attrs.dry_run,
            "options": {
                "kind": {OP_CREATE: "CreateOptions", OP_UPDATE: "UpdateOptions", OP_DELETE: "DeleteOptions"}[
                    attrs.operation
                ],
                "apiVersion": "meta.k8s.io/v1",
            },
        }
        if attrs.subresource:
            request["subResource"] = request["requestSubResource"] = attrs.subresource
        body = msgspec.json.encode(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        )
        try:
            raw = await self.post_review(url, body, shown=shown, ca_bundle=hook.client_config.ca_bundle,
                                         server_name=server_name, timeout=timeout)
        except WebhookCallError as e:
            raise WebhookCallError(f"failed to call webhook: {e}") from None
        try:
            gvk = _GVK_DECODER.decode(raw)
            review = _RESPONSE_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise WebhookCallError(f"received invalid webhook response: {e}") from None
        if (gvk.apiVersion, gvk.kind) != ("admission.k8s.io/v1", "AdmissionReview"):
            # kube-apiserver reads the type from the response itself, not from what it sent
            raise WebhookCallError("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, "
                                   f"got {gvk.apiVersion}, Kind={gvk.kind}")
        if review.response is None:
            raise WebhookCallError("webhook response was absent")
        if review.response.uid != request["uid"]:
            raise WebhookCallError(f'expected response.uid="{request["uid"]}", got "{review.response.uid}"')
        return review.response

    async def _outcome(
        self,
        hook: Webhook,
        attrs: Attributes,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        warnings: list[str],
    ) -> Any | None:
        """The webhook's response, None when a failed call is ignored; raises Denied to reject."""
        if attrs.dry_run and hook.side_effects not in ("None", "NoneOnDryRun"):
            raise Denied(errors.bad_request(f'admission webhook "{hook.name}" does not support dry run'))
        try:
            response = await self._call(hook, attrs, obj, old)
        except WebhookCallError as e:
            if hook.failure_policy == "Ignore":
                log.warning("failed calling webhook %r (ignored): %s", hook.name, e)
                return None
            raise Denied(
                ApiError(
                    500,
                    "InternalError",
                    f'Internal error occurred: failed calling webhook "{hook.name}": {e}',
                    {"causes": [{"message": f'failed calling webhook "{hook.name}": {e}'}]},
                )
            ) from None
        warnings.extend(response.warnings or [])
        if not response.allowed:
            status = response.status
            code = status.code if status is not None and status.code >= 400 else 400
            denied_by = f'admission webhook "{hook.name}" denied the request'
            if status is not None and status.message:
                message = f"{denied_by}: {status.message}"
            elif status is not None and status.reason:
                message = f"{denied_by}: {status.reason}"
            else:
                message = f"{denied_by} without explanation"
            raise Denied(ApiError(code, status.reason if status is not None else "", message, None))
        return response

    async def mutate(
        self, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None, warnings: list[str]
    ) -> dict[str, Any] | None:
        """Every matching mutating webhook in order, patches applied; one reinvocation round (IfNeeded)."""
        hooks = self.matching(True, attrs, obj, old)
        last_change = -1
        called: list[tuple[int, Webhook]] = []
        for i, hook in enumerate(hooks):
            before = obj
            obj = await self._mutate_one(hook, attrs, obj, old, warnings)
            called.append((i, hook))
            if obj != before:
                last_change = i
        again = [h for i, h in called if h.reinvocation_policy == "IfNeeded" and i < last_change]
        for hook in again:
            obj = await self._mutate_one(hook, attrs, obj, old, warnings)
        return obj

    async def _mutate_one(
        self,
        hook: Webhook,
        attrs: Attributes,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        warnings: list[str],
    ) -> dict[str, Any] | None:
        response = await self._outcome(hook, attrs, obj, old, warnings)
        if response is None or not response.patch or attrs.operation == OP_DELETE or obj is None:
            return obj
        if response.patch_type != PATCH_TYPE_JSON:
            raise Denied(
                ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: failed calling webhook "
                    f'"{hook.name}": unsupported patch type "{response.patch_type}"',
                    None,
                )
            )
        try:
            patched = json_patch(obj, msgspec.json.decode(response.patch))
        except (PatchError, PatchDecodeError, msgspec.DecodeError) as e:
            raise Denied(
                ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: failed calling webhook "
                    f'"{hook.name}": JSON patch could not be applied: {e}',
                    None,
                )
            ) from None
        if not isinstance(patched, dict):
            return obj
        return patched

    async def validate(
        self, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None, warnings: list[str]
    ) -> None:
        """Every matching validating webhook, concurrently; the first denial (in order) wins."""
        hooks = self.matching(False, attrs, obj, old)
        if not hooks:
            return
        results = await asyncio.gather(
            *(self._outcome(h, attrs, obj, old, warnings) for h in hooks), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def close(self) -> None:
        await self.client.close()

    # --- the request path -------------------------------------------------------------------------

    async def handle(
        self, server: ApiServer, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Result:
        """Admit one write, then serve it through the server's normal path with the admitted body."""
        try:
            for attempt in range(_RETRIES):
                try:
                    return await self._handle_once(server, request, verb, rt, ns, name, sub)
                except ApiError as e:
                    # a write that landed between admission and commit: admit again (as GuaranteedUpdate does)
                    if e.code != 409 or verb != "patch" or attempt == _RETRIES - 1:
                        raise
            raise AssertionError("unreachable")
        except Denied as d:
            from sim.server import error_response

            return error_response(d.error)

    async def _handle_once(
        self, server: ApiServer, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Result:
        from sim.http import Request as HttpRequest

        store = self.store
        dry_run = bool(request.query.get("dryRun"))
        warnings: list[str] = []
        if verb == "delete":
            old = store.get(rt, ns, name)
            attrs = Attributes(OP_DELETE, rt, sub, ns, name, dry_run)
            await self.mutate(attrs, None, old, warnings)
            await self.validate(attrs, None, old, warnings)
            return await _with_warnings(
                server._handle(request, verb, rt, ns, name, sub, admitted=True), warnings
            )
        body = server._body(request)
        current = store.try_get(rt, ns, name) if name else None
        if verb == "create" or verb == "patch" and request.content_type == APPLY_PATCH and current is None:
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be an object")
            obj = copy_obj(body)
            meta = obj.setdefault("metadata", {})
            if verb == "patch":
                meta["name"] = name
            if rt.namespaced:
                meta.setdefault("namespace", ns or "default")
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            attrs = Attributes(
                OP_CREATE, rt, sub, ns or meta.get("namespace", ""), meta.get("name", ""), dry_run
            )
            if not self.matching(True, attrs, obj, None) and not self.matching(False, attrs, obj, None):
                return await _with_warnings(
                    server._handle(request, verb, rt, ns, name, sub, admitted=True), []
                )
            mutated = await self.mutate(attrs, obj, None, warnings)
            assert mutated is not None
            if self.matching(False, attrs, mutated, None):
                final = store.create(rt, ns, copy_obj(mutated), dry_run=True)
                await self.validate(attrs, final, None, warnings)
            new_request = HttpRequest(
                "POST",
                _collection_path(request.path, verb),
                request.query_string,
                _json_headers(request),
                msgspec.json.encode(mutated),
                None,
            )
            return await _with_warnings(
                server._handle(new_request, "create", rt, ns, "", sub, admitted=True), warnings
            )
        # update / patch of an existing object
        old = store.get(rt, ns, name)
        attrs = Attributes(OP_UPDATE, rt, sub, ns, name, dry_run)
        if not self.any_rule_matches(attrs):
            return await _with_warnings(server._handle(request, verb, rt, ns, name, sub, admitted=True), [])
        store.field_validation = request.query.get("fieldValidation")
        try:
            if verb == "update":
                cand = store.update(rt, ns, name, body, subresource=sub or None, dry_run=True)
            else:
                cand = store.patch(
                    rt,
                    ns,
                    name,
                    request.content_type,
                    body,
                    subresource=sub or None,
                    dry_run=True,
                    field_manager=request.query.get("fieldManager"),
                )
        finally:
            store.field_validation = None
        cand = copy_obj(cand)
        if not self.matching(True, attrs, cand, old) and not self.matching(False, attrs, cand, old):
            return await _with_warnings(server._handle(request, verb, rt, ns, name, sub, admitted=True), [])
        mutated = await self.mutate(attrs, cand, old, warnings)
        assert mutated is not None
        mutated.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        if self.matching(False, attrs, mutated, old):
            final = store.update(rt, ns, name, copy_obj(mutated), subresource=sub or None, dry_run=True)
            await self.validate(attrs, final, old, warnings)
        new_request = HttpRequest(
            "PUT",
            request.path,
            request.query_string,
            _json_headers(request),
            msgspec.json.encode(mutated),
            None,
        )
        return await _with_warnings(
            server._handle(new_request, "update", rt, ns, name, sub, admitted=True), warnings
        )


def _collection_path(path: str, verb: str) -> str:
    return path.rsplit("/", 1)[0] if verb == "patch" else path


def _json_headers(request: Request) -> Any:
    from sim.http import Headers

    headers = Headers(request.headers)
    headers["content-type"] = "application/json"
    return headers


async def _with_warnings(result: Response | Awaitable[Result], warnings: list[str]) -> Result:
    """Webhook warnings go out as `Warning: 299 - "..."` headers (kube-apiserver's format)."""
    from sim.http import Response as HttpResponse
    from sim.server import warning_header

    done = await result if not isinstance(result, HttpResponse) else result
    if isinstance(done, HttpResponse):
        for w in warnings:
            done.add_header("Warning", warning_header(w))
    return done
