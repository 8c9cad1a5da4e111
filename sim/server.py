"""The HTTP face of the store: Kubernetes REST paths, discovery, tables, watch streams, fault injection."""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, NamedTuple

import msgspec
import yaml

from sim import errors, protobuf
from sim.admission import Admission
from sim.conversion import Conversion
from sim.errors import ApiError
from sim.faults import Faults
from sim.http import Handler, Request, Response, Result, Router, StreamResponse
from sim.resources import ResourceType, version_priority
from sim.selectors import parse_field_selector, parse_label_selector
from sim.store import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, PATCH_TYPES, STRATEGIC_PATCH, Store
from sim.tables import table


class RequestRecord(NamedTuple):
    """One API request as the server saw it (`ApiServer.request_log`)."""

    time: float  # time.monotonic() on arrival
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    resource: str  # plural
    subresource: str = ""  # status, binding, ...
    namespace: str = ""
    name: str = ""
    user_agent: str = ""

log = logging.getLogger("sim.server")

K8S_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kruisebus-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# kinds whose registry sets ReturnDeletedObject: DELETE answers with the object, others with a Status
RETURN_DELETED_OBJECT = {"Pod", "Namespace"}

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def truthy(v: str | None) -> bool:
    return v is not None and v.strip().lower() in ("true", "1", "yes")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_enc.encode(body), status, headers=headers)


def warning_header(text: str) -> str:
    """A `Warning` header value as kube-apiserver writes it (RFC 7234 code 299, quoted text)."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def error_response(e: ApiError) -> Response:
    return json_response(e.status(), e.code, e.headers or None)


_DECODE_ERRORS = (msgspec.DecodeError, yaml.YAMLError, UnicodeDecodeError, ValueError, IndexError)


def decode_error_response(e: Exception) -> Response:
    return error_response(errors.bad_request(f"error decoding request body: {e}"))


async def _guard(pending: Awaitable[Result]) -> Result:
    """API errors raised after a handler started waiting become Status responses, as before it waited."""
    try:
        return await pending
    except ApiError as e:
        return error_response(e)
    except _DECODE_ERRORS as e:
        return decode_error_response(e)


class ApiServer:
    def __init__(
        self,
        store: Store,
        *,
        faults: Faults | None = None,
        bookmark_interval: float = 1.0,
        node_routes: list[tuple[str, str, Handler]] | None = None,
    ) -> None:
        self.store = store
        self.faults = faults or Faults()
        self.bookmark_interval = bookmark_interval
        self.rv_wait = 3.0  # how long a list for a future resourceVersion waits before 504 (like k8s)
        self.router = Router()
        self.router.add("GET", "/sim/faults", self._get_faults)
        self.router.add("POST", "/sim/faults", self._post_faults)
        self.router.add("DELETE", "/sim/faults", self._delete_faults)
        for method, path, fn in node_routes or []:
            self.router.add(method, path, fn)
        self.router.add("*", "/{tail:.*}", self._dispatch)
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self.closing = asyncio.Event()
        # every API request (`RequestRecord`), when a test or a benchmark turns it on (a deque): how
        # client-side behaviour such as a rate limit or the writes of one update are measured where the
        # server sees them
        self.request_log: collections.deque[RequestRecord] | None = None
        self.admission = Admission(store)  # dynamic admission webhooks (sim/admission.py)
        self.conversion = Conversion(self.admission)  # CRDs served in several versions (sim/conversion.py)

    # ---------------------------------------------------------------- /sim/faults

    def _get_faults(self, request: Request) -> Response:
        return json_response(self.faults.to_dict())

    def _post_faults(self, request: Request) -> Response:
        try:
            body = request.json()
            self.faults.update(**body)
        except (ValueError, TypeError) as e:
            return error_response(errors.bad_request(str(e)))
        return json_response(self.faults.to_dict())

    def _delete_faults(self, request: Request) -> Response:
        self.faults.reset()
        return json_response(self.faults.to_dict())

    # ---------------------------------------------------------------- discovery

    def _groups(self) -> dict[str, list[ResourceType]]:
        out: dict[str, list[ResourceType]] = {}
        for rt in self.store.types.values():
            out.setdefault(rt.group, []).append(rt)
        return out

    def _group_doc(self, group: str, rts: list[ResourceType]) -> dict[str, Any]:
        versions: list[str] = []
        for rt in rts:
            if rt.version not in versions:
                versions.append(rt.version)
        if group:  # kube-apiserver orders a group's versions by priority (v1beta1 before v1alpha1)
            versions.sort(key=version_priority)
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        rts = [rt for rt in self.store.types.values() if rt.group == group and rt.version == version]
        if not rts:
            return None
        resources = []
        for rt in sorted(rts, key=lambda r: r.plural):
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(
                    ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
                ),
                "storageVersionHash": hashlib.sha256(
                    f"{rt.group}/{rt.version}/{rt.kind}".encode()
                ).hexdigest()[:12],
            }
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            if rt.categories:
                entry["categories"] = rt.categories
            resources.append(entry)
            if rt.status_subresource:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.scale:
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if "binding" in rt.extra_subresources:
                resources.append(
                    {
                        "name": f"{rt.plural}/binding",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Binding",
                        "verbs": ["create"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _discovery(self, request: Request, parts: list[str]) -> Response | None:
        host = request.host
        if parts == ["api"]:
            return json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
                }
            )
        if parts == ["api", "v1"]:
            return json_response(self._resource_list("", "v1"))
        if parts == ["apis"]:
            groups = [self._group_doc(g, rts) for g, rts in self._groups().items() if g]
            return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if len(parts) == 2 and parts[0] == "apis":
            rts = self._groups().get(parts[1])
            if not rts:
                return None
            return json_response(dict(kind="APIGroup", apiVersion="v1", **self._group_doc(parts[1], rts)))
        if len(parts) == 3 and parts[0] == "apis":
            doc = self._resource_list(parts[1], parts[2])
            return json_response(doc) if doc else None
        if parts == ["version"]:
            return json_response(K8S_VERSION)
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return Response(b"ok", content_type="text/plain; charset=utf-8")
        return None

    # ---------------------------------------------------------------- routing

    def _route(self, parts: list[str]) -> tuple[ResourceType, str, str, str] | None:
        """(type, namespace, name, subresource) for a resource path, or None."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rt = self.store.lookup(group, version, rest[0])
        if rt is None:
            return None
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if ns and not rt.namespaced:
            return None
        return rt, ns, name, sub

    def _dispatch(self, request: Request) -> Response | Awaitable[Result]:
        """Serve one API request; returns the response, or an awaitable for the few that must wait."""
        parts = [p for p in request.path.split("/") if p]
        try:
            if request.method == "GET":
                disc = self._discovery(request, parts)
                if disc is not None:
                    return disc
                if parts and parts[0] == "openapi":
                    return self._openapi(parts)
            route = self._route(parts)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            rt, ns, name, sub = route
            if sub and sub not in rt.subresources():
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            verb = self._verb(request, name)
            if self.request_log is not None:
                self.request_log.append(RequestRecord(time.monotonic(), verb, rt.plural, sub, ns, name,
                                                      str(request.headers.get("user-agent", ""))))
            if self.faults.active:
                delay = self.faults.latency_for(verb, rt.plural)
                if delay > 0:
                    return _guard(self._delayed(delay, request, verb, rt, ns, name, sub))
                injected = self.faults.error_for(verb, rt.plural, name)
                if injected is not None:
                    return error_response(injected)
            return self._serve(request, verb, rt, ns, name, sub)
        except ApiError as e:
            return error_response(e)
        except _DECODE_ERRORS as e:
            return decode_error_response(e)

    async def _delayed(
        self, delay: float, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Result:
        """Injected latency: the request is served (and its fault drawn) after the delay."""
        await asyncio.sleep(delay)
        injected = self.faults.error_for(verb, rt.plural, name)
        if injected is not None:
            return error_response(injected)
        result = self._serve(request, verb, rt, ns, name, sub)
        return result if isinstance(result, Response) else await result

    def _serve(
        self, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Response | Awaitable[Result]:
        if verb == "watch":
            return _guard(self._watch(request, rt, ns))
        if rt.converted:
            return _guard(self.conversion.handle(self, request, verb, rt, ns, name, sub))
        return self._handle(request, verb, rt, ns, name, sub)

    @staticmethod
    def _verb(request: Request, name: str) -> str:
        m = request.method
        if m == "GET":
            if name:
                return "get"
            return "watch" if truthy(request.query.get("watch")) else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(m, m.lower())

    def _body(self, request: Request) -> Any:
        raw = request.body
        if not raw:
            return None
        ctype = request.content_type
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        if "protobuf" in ctype:
            obj = protobuf.decode(raw)
            if obj is None:
                raise errors.unsupported_media_type(ctype, ["application/json", "application/yaml"])
            return obj
        return _dec.decode(raw)

    def _handle(
        self,
        request: Request,
        verb: str,
        rt: ResourceType,
        ns: str,
        name: str,
        sub: str,
        admitted: bool = False,
    ) -> Response | Awaitable[Result]:
        q = request.query
        store = self.store
        dry_run = bool(q.get("dryRun"))
        if sub == "scale":
            if verb == "get":
                return json_response(store.get_scale(rt, ns, name))
            if verb == "update":
                return json_response(store.set_scale(rt, ns, name, self._body(request) or {}))
            if verb == "patch":
                return json_response(
                    store.patch_scale(rt, ns, name, request.content_type, self._body(request))
                )
            raise errors.method_not_allowed()
        if sub == "binding":
            if verb != "create":
                raise errors.method_not_allowed()
            body = self._body(request) or {}
            target = (body.get("target") or {}).get("name")
            if not target:
                raise errors.invalid(
                    rt,
                    name,
                    [{"reason": "FieldValueRequired", "field": "target.name", "message": "Required value"}],
                )
            store.bind(ns, name, target)
            return json_response(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
            )
        if not admitted and self.admission.covers(verb, rt, sub):
            return _guard(self.admission.handle(self, request, verb, rt, ns, name, sub))
        if verb == "get":
            obj = store.get(rt, ns, name)
            return self._respond_objects(request, rt, [obj], single=True)
        if verb == "list":
            return self._list(request, rt, ns)
        if verb in ("create", "update", "patch"):
            body = self._body(request)
            store.field_validation = q.get("fieldValidation")
            store.warnings = []
            try:
                if verb == "create":
                    if name:
                        raise errors.method_not_allowed()
                    obj, code = store.create(rt, ns, body, dry_run=dry_run, owned=True), 201
                elif verb == "update":
                    obj, code = (
                        store.update(rt, ns, name, body, subresource=sub or None, dry_run=dry_run),
                        200,
                    )
                else:
                    ctype = request.content_type
                    if ctype not in PATCH_TYPES:
                        raise errors.unsupported_media_type(
                            ctype,
                            [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
                            + ([STRATEGIC_PATCH] if rt.strategic else []),
                        )
                    obj = store.patch(
                        rt,
                        ns,
                        name,
                        ctype,
                        body,
                        subresource=sub or None,
                        dry_run=dry_run,
                        field_manager=q.get("fieldManager"),
                        force=truthy(q.get("force")),
                    )
                    code = 200
                warnings = store.warnings
            finally:
                store.field_validation = None
                store.warnings = []
            resp = json_response(obj, code)
            for w in warnings:
                resp.add_header("Warning", warning_header(w))
            return resp
        if verb == "delete":
            body = self._body(request) or {}
            grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
            propagation = q.get("propagationPolicy", body.get("propagationPolicy"))
            if body.get("orphanDependents") is True or truthy(q.get("orphanDependents")):
                propagation = "Orphan"
            elif propagation is None and (
                body.get("orphanDependents") is False or q.get("orphanDependents") == "false"
            ):
                propagation = "Background"
            obj = store.delete(
                rt,
                ns,
                name,
                grace_period=None if grace is None else int(grace),
                preconditions=body.get("preconditions"),
                propagation=propagation,
                dry_run=dry_run,
            )
            if rt.kind in RETURN_DELETED_OBJECT or store.try_get(rt, ns, name) is not None:
                return json_response(obj)  # pods/namespaces, or still there (graceful / finalizers)
            details = {"name": name, "group": rt.group, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
            if not rt.group:
                del details["group"]
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        if verb == "deletecollection":
            label = parse_label_selector(q.get("labelSelector"))
            field = parse_field_selector(q.get("fieldSelector"))
            grace = q.get("gracePeriodSeconds")
            items = store.delete_collection(
                rt, ns or None, label, field, None if grace is None else int(grace)
            )
            return json_response(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(store.rv)},
                    "items": items,
                }
            )
        raise errors.method_not_allowed()

    def _list(self, request: Request, rt: ResourceType, ns: str) -> Response | Awaitable[Result]:
        """list with Kubernetes' resourceVersion / resourceVersionMatch / limit / continue semantics."""
        q = request.query
        store = self.store
        label = parse_label_selector(q.get("labelSelector"))
        field = parse_field_selector(q.get("fieldSelector"))
        rv_param = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        cont = q.get("continue", "")
        try:
            limit = max(int(q.get("limit") or 0), 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {q.get('limit')}") from None
        if match and match not in ("Exact", "NotOlderThan"):
            raise errors.invalid_list_options(
                "resourceVersionMatch",
                f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"',
            )
        if match and not rv_param:
            raise errors.invalid_list_options(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        if cont and (rv_param or match):
            field_name = "resourceVersionMatch" if match else "resourceVersion"
            raise errors.invalid_list_options(
                field_name, f"Forbidden: {field_name} is forbidden when continue is provided"
            )
        if match == "Exact" and rv_param == "0":
            raise errors.invalid_list_options(
                "resourceVersionMatch",
                'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
            )
        at: int | None = None
        start: tuple[str, str] | None = None
        if cont:
            at, start = _decode_continue(cont)
            if at < 0:
                at = None  # an "inconsistent" token (from a 410): continue from the latest state
        elif rv_param:
            try:
                want = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv_param}") from None
            if want > store.rv:
                return _guard(self._list_later(request, rt, ns, want))
            if rv_param == "0":
                limit = 0  # served from the watch cache: limit is ignored, like kube-apiserver
            elif match == "Exact":
                at = want
        try:
            items, snap, last, remaining = store.list_at(
                rt, ns or None, label, field, at=at, start=start, limit=limit
            )
        except ApiError as e:
            if e.code == 410 and cont:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. You "
                    "can start a new list without the continue parameter, or use the continue token in "
                    "this response to retrieve the remainder of the results. Continuing with the provided "
                    "token results in an inconsistent list - objects that were created, modified, or "
                    "deleted between the time the first chunk was returned and now may show up in the list.",
                    _encode_continue(-1, start),
                ) from None
            raise
        meta: dict[str, Any] = {"resourceVersion": str(snap)}
        if last is not None:
            meta["continue"] = _encode_continue(snap if at is not None or not cont else -1, last)
            if label is None and field is None:
                meta["remainingItemCount"] = remaining
        return self._respond_objects(request, rt, items, rv=str(snap), list_meta=meta)

    async def _list_later(self, request: Request, rt: ResourceType, ns: str, want: int) -> Result:
        """NotOlderThan/Exact with a resourceVersion the store has not reached: wait, then 504."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rv_wait
        while self.store.rv < want:
            if loop.time() >= deadline:
                raise errors.too_large_rv(want, self.store.rv)
            await asyncio.sleep(0.02)
        result = self._list(request, rt, ns)
        return result if isinstance(result, Response) else await result

    def _respond_objects(
        self,
        request: Request,
        rt: ResourceType,
        items: list[dict[str, Any]],
        *,
        single: bool = False,
        rv: str = "",
        list_meta: dict[str, Any] | None = None,
    ) -> Response:
        accept = request.headers.get("Accept", "")
        if "as=Table" in accept:
            include = request.query.get("includeObject", "Metadata")
            t = table(rt, items, rv or (items[0]["metadata"]["resourceVersion"] if items else ""), include)
            if list_meta and "continue" in list_meta:
                t.setdefault("metadata", {})["continue"] = list_meta["continue"]
                if "remainingItemCount" in list_meta:
                    t["metadata"]["remainingItemCount"] = list_meta["remainingItemCount"]
            return json_response(t)
        if single:
            return json_response(items[0])
        return json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": list_meta or {"resourceVersion": rv},
                "items": items,
            }
        )

    # ---------------------------------------------------------------- watch

    async def _watch(self, request: Request, rt: ResourceType, ns: str) -> StreamResponse:
        q = request.query
        label = parse_label_selector(q.get("labelSelector"))
        field = parse_field_selector(q.get("fieldSelector"))
        timeout = q.get("timeoutSeconds")
        bookmarks = truthy(q.get("allowWatchBookmarks"))
        # a streaming list (client-go's WatchList): the current objects as ADDED events, then a BOOKMARK
        # annotated `k8s.io/initial-events-end`, then the changes after that snapshot
        initial_events = truthy(q.get("sendInitialEvents"))
        if initial_events:
            if q.get("resourceVersionMatch") != "NotOlderThan":
                raise errors.invalid_list_options(
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            if not bookmarks:
                raise errors.invalid_list_options(
                    "allowWatchBookmarks",
                    "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                )
        elif q.get("resourceVersionMatch"):
            raise errors.invalid_list_options(
                "resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden for watch"
            )
        resp = StreamResponse(
            request, headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
        )
        try:
            since = "0" if initial_events else q.get("resourceVersion")  # NotOlderThan: now will do
            source = self.conversion.storage(rt) if rt.converted else rt
            w = self.store.watch(source, ns or None, since, label, field)
            snapshot_rv, initial = self.store.rv, len(w.queue)
        except ApiError as e:
            if e.code != 410:
                raise
            await resp.prepare()
            await resp.write(_enc.encode({"type": "ERROR", "object": e.status()}) + b"\n")
            await resp.write_eof()
            return resp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        cut = self.faults.watch_cut_after
        cut_seconds = self.faults.watch_cut_after_seconds
        if cut_seconds is not None:  # an injected cut ends the stream like a server-side timeout
            at = loop.time() + cut_seconds
            deadline = at if deadline is None else min(deadline, at)
        sent = 0
        next_bookmark = loop.time() + self.bookmark_interval
        task = asyncio.current_task()
        if task is not None:
            self._watch_tasks.add(task)
        as_table = "as=Table" in request.headers.get("Accept", "")
        include = q.get("includeObject", "Metadata")
        first_table = [True]

        async def encode(batch: list[Any]) -> bytes:
            if rt.converted:
                try:
                    batch = await self.conversion.events(rt, batch)
                except ApiError as e:  # like kube-apiserver: an ERROR event, then the watch ends
                    w.close()
                    return _enc.encode({"type": "ERROR", "object": e.status()}) + b"\n"
            if not as_table:
                return b"".join(ev.line() for ev in batch)
            out = []
            for ev in batch:  # kubectl get -w: every event carries a one-row Table (columns on the first)
                t = table(rt, [ev.obj], str(ev.rv), include)
                if not first_table[0]:
                    t["columnDefinitions"] = []
                first_table[0] = False
                out.append(_enc.encode({"type": ev.type, "object": t}) + b"\n")
            return b"".join(out)

        def bookmark(rv: int, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
            return _enc.encode({"type": "BOOKMARK", "object": obj}) + b"\n"

        try:
            await resp.prepare()
            if initial_events:
                first = [w.queue.popleft() for _ in range(initial)]
                sent += len(first)
                await resp.write(await encode(first) + bookmark(snapshot_rv, initial_end=True))
            while not self.closing.is_set():
                now = loop.time()
                waits = []
                if deadline is not None:
                    waits.append(deadline - now)
                if bookmarks:
                    waits.append(next_bookmark - now)
                wait = max(min(waits), 0) if waits else None
                batch = await w.next_batch(wait)
                if batch:
                    if cut is not None and sent + len(batch) >= cut:
                        batch = batch[: max(cut - sent, 0)]
                        if batch:
                            await resp.write(await encode(batch))
                        break
                    sent += len(batch)
                    await resp.write(await encode(batch))
                if w.closed:
                    break
                now = loop.time()
                if deadline is not None and now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    next_bookmark = now + self.bookmark_interval
                    if not w.queue:
                        await resp.write(bookmark(self.store.rv))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            w.close()
            if task is not None:
                self._watch_tasks.discard(task)
        return resp

    # ---------------------------------------------------------------- openapi

    def _openapi(self, parts: list[str]) -> Response:
        if parts == ["openapi", "v3"]:
            paths = {}
            gvs = {(rt.group, rt.version) for rt in self.store.types.values()}
            for g, v in sorted(gvs):
                key = f"apis/{g}/{v}" if g else f"api/{v}"
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={self._openapi_hash(g, v)}"}
            return json_response({"paths": paths})
        if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                return json_response(self._openapi_gv("", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                return json_response(self._openapi_gv(rest[1], rest[2]))
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def _openapi_hash(self, group: str, version: str) -> str:
        names = sorted(
            rt.plural for rt in self.store.types.values() if (rt.group, rt.version) == (group, version)
        )
        return hashlib.sha256(f"{group}/{version}/{names}".encode()).hexdigest()[:32].upper()

    def _openapi_gv(self, group: str, version: str) -> dict[str, Any]:
        rts = [rt for rt in self.store.types.values() if (rt.group, rt.version) == (group, version)]
        if not rts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        schemas: dict[str, Any] = {}
        paths: dict[str, Any] = {}
        gv_prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        params = [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        ]
        for rt in rts:
            ref_name = f"{_reverse_group(rt.group)}.{rt.version}.{rt.kind}"
            schema = (
                dict(rt.schema)
                if rt.schema
                else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            )
            schema["x-kubernetes-group-version-kind"] = [
                {"group": rt.group, "version": rt.version, "kind": rt.kind}
            ]
            schemas[ref_name] = schema
            base = (
                f"{gv_prefix}/namespaces/{{namespace}}/{rt.plural}"
                if rt.namespaced
                else f"{gv_prefix}/{rt.plural}"
            )
            ok = {
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{ref_name}"}}
                        },
                    }
                }
            }
            paths[base] = {
                "post": dict(
                    ok,
                    parameters=params,
                    **{
                        "x-kubernetes-action": "post",
                        "x-kubernetes-group-version-kind": {
                            "group": rt.group,
                            "version": rt.version,
                            "kind": rt.kind,
                        },
                    },
                )
            }
            paths[base + "/{name}"] = {
                "get": ok,
                "put": dict(ok, parameters=params),
                "patch": dict(
                    ok,
                    parameters=params,
                    **{
                        "x-kubernetes-action": "patch",
                        "x-kubernetes-group-version-kind": {
                            "group": rt.group,
                            "version": rt.version,
                            "kind": rt.kind,
                        },
                    },
                ),
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": schemas},
        }


def _encode_continue(rv: int, last: tuple[str, str] | None) -> str:
    """kube-apiserver's continue token shape: base64 of {"v": "meta.k8s.io/v1", "rv": N, "start": KEY}."""
    key = "/".join(last) if last else ""
    raw = _enc.encode({"v": "meta.k8s.io/v1", "rv": rv, "start": key + "\x00"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = _dec.decode(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            )
        rv = int(data["rv"])
        start = str(data["start"]).rstrip("\x00")
        ns, _, name = start.partition("/")
        if not name:
            ns, name = "", start
        return rv, (ns, name)
    except (ValueError, KeyError, TypeError, AttributeError, msgspec.DecodeError) as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from None


def _reverse_group(group: str) -> str:
    if not group:
        return "io.k8s.api.core"
    return ".".join(reversed(group.split(".")))
