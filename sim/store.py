"""The object store behind the API server: Kubernetes object semantics, watch fan-out, garbage collection.

Everything runs on one asyncio loop and every write is synchronous, so no locks are needed and a write
is atomic with respect to watchers. Stored objects are treated as immutable: a write builds a new dict
and swaps it in, so readers (HTTP handlers serializing, kubelets) may hold references without copying.
Callers must not mutate what `get`/`list` return (use `copy_obj` first).
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import logging
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.jsonmerge import merge_patch
from sim import errors, job_api, schema
from sim.builtin_fields import unknown_fields
from sim.errors import ApiError
from sim.patch import PatchDecodeError, PatchError, json_patch, strategic_merge
from sim.pods import FORBIDDEN_UPDATE, default_pod_spec, qos_class, validate_pod_create, validate_pod_update
from sim.resources import ResourceType, builtin_types, load_crd_files, types_from_crd
from sim.selectors import Predicate

log = logging.getLogger("sim.store")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_encoder = msgspec.json.Encoder()


def validate_meta(meta: dict[str, Any]) -> list[dict[str, str]]:
    """Label syntax and ownerReferences rules of ValidateObjectMeta (the ones kruisebus can trip over)."""
    causes = []
    for k, v in (meta.get("labels") or {}).items():
        prefix, _, name = k.rpartition("/")
        if (
            not isinstance(k, str)
            or len(name) > 63
            or not _LABEL_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not _DNS1123.match(prefix)))
        ):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.labels",
                    "message": f'Invalid value: "{k}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character "
                    "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                }
            )
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.labels",
                    "message": f'Invalid value: "{v}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
                    "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                }
            )
    for k, v in (meta.get("annotations") or {}).items():
        if not isinstance(v, str):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": f"metadata.annotations[{k}]",
                    "message": "Invalid value: annotation values must be strings",
                }
            )
    refs = meta.get("ownerReferences") or []
    for i, r in enumerate(refs):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(r, dict) or not r.get(f):
                causes.append(
                    {
                        "reason": "FieldValueRequired",
                        "field": f"metadata.ownerReferences[{i}].{f}",
                        "message": "Required value",
                    }
                )
    controllers = [r for r in refs if isinstance(r, dict) and r.get("controller")]
    if len(controllers) > 1:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": "metadata.ownerReferences",
                "message": "Invalid value: only one reference can have Controller set to true",
            }
        )
    return causes


_decoder = msgspec.json.Decoder()


_now_cache: list[Any] = [0, ""]


def now_iso(offset_seconds: float = 0) -> str:
    """RFC 3339 UTC with second precision, like metav1.Time."""
    if offset_seconds:
        return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sec = int(time.time())
    if _now_cache[0] != sec:
        _now_cache[0] = sec
        _now_cache[1] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(_now_cache[1])


def patch_failure(e: PatchError | PatchDecodeError) -> ApiError:
    """What kube-apiserver answers for a patch that does not apply (422) or does not decode (400)."""
    return errors.bad_request(str(e)) if isinstance(e, PatchDecodeError) else errors.json_patch_failed()


def patched_object(new: Any) -> dict[str, Any]:
    """A patch result that must be an object (a JSON patch may replace the root with anything)."""
    if not isinstance(new, dict):
        raise errors.bad_request("patched object is not an object")
    return new


def copy_obj(obj: Any) -> Any:
    """A deep copy of a JSON value (faster than copy.deepcopy for large objects)."""
    return _decoder.decode(_encoder.encode(obj))


class WatchEvent:
    """One change; its wire form is encoded once and shared by every watcher that gets it unchanged."""

    __slots__ = ("type", "obj", "old", "rv", "_line")

    def __init__(self, type_: str, obj: dict[str, Any], old: dict[str, Any] | None, rv: int) -> None:
        self.type = type_
        self.obj = obj
        self.old = old
        self.rv = rv
        self._line: bytes | None = None

    def line(self) -> bytes:
        if self._line is None:
            self._line = _encoder.encode({"type": self.type, "object": self.obj}) + b"\n"
        return self._line


class Watcher:
    """A subscription to one resource (optionally one namespace, selectors). Consume with `next_batch`."""

    def __init__(
        self, bucket: Bucket, ns: str | None, label: Predicate | None, field: Predicate | None, max_queue: int
    ) -> None:
        self.bucket = bucket
        self.ns = ns or None
        self.label = label
        self.field = field
        self.max_queue = max_queue
        self.queue: deque[WatchEvent] = deque()
        self.closed = False
        self.overflowed = False
        self._wake = asyncio.Event()

    def _matches(self, obj: dict[str, Any]) -> bool:
        return (self.label is None or self.label(obj)) and (self.field is None or self.field(obj))

    def offer(self, ev: WatchEvent) -> None:
        if self.closed:
            return
        if self.ns is not None and ev.obj["metadata"].get("namespace") != self.ns:
            return
        if self.label is not None or self.field is not None:
            now = self._matches(ev.obj)
            if ev.type == "MODIFIED":
                before = ev.old is not None and self._matches(ev.old)
                if now and not before:
                    ev = WatchEvent("ADDED", ev.obj, None, ev.rv)
                elif before and not now:
                    ev = WatchEvent("DELETED", ev.obj, None, ev.rv)
                elif not now:
                    return
            elif not now:
                return
        self.queue.append(ev)
        if len(self.queue) > self.max_queue:
            self.overflowed = True
            self.close()
        self._wake.set()

    async def next_batch(self, timeout: float | None = None) -> list[WatchEvent]:
        """Everything queued (possibly empty after `timeout` or once closed)."""
        if not self.queue and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        out = list(self.queue)
        self.queue.clear()
        return out

    def close(self) -> None:
        self.closed = True
        self.bucket.watchers.discard(self)
        self._wake.set()

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self.queue:
            if self.closed:
                raise StopAsyncIteration
            await self.next_batch()
        return self.queue.popleft()


class Bucket:
    """All objects of one resource type, indexed by namespace, plus its watch history ring."""

    def __init__(self, rt: ResourceType, history: int) -> None:
        self.rt = rt
        self.by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        self.history: deque[WatchEvent] = deque(maxlen=history)
        self.evicted_rv = 0  # every event with rv > evicted_rv is still in `history`
        self.watchers: set[Watcher] = set()
        self.count = 0
        self._sorted: dict[str, builtins.list[str]] = {}  # ns -> sorted names (dropped on add/remove)

    def sorted_names(self, ns: str) -> builtins.list[str]:
        """The names in `ns`, sorted; cached until an object is added or removed (paged lists reuse it)."""
        names = self._sorted.get(ns)
        if names is None:
            names = self._sorted[ns] = sorted(self.by_ns.get(ns) or ())
        return names

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        d = self.by_ns.get(ns)
        return d.get(name) if d else None

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        d = self.by_ns.setdefault(ns, {})
        if meta["name"] not in d:
            self.count += 1
            self._sorted.pop(ns, None)
        d[meta["name"]] = obj

    def pop(self, ns: str, name: str) -> None:
        d = self.by_ns.get(ns)
        if d and d.pop(name, None) is not None:
            self.count -= 1
            self._sorted.pop(ns, None)
            if not d:
                del self.by_ns[ns]

    def iter(self, ns: str | None) -> Iterator[dict[str, Any]]:
        if ns:
            d = self.by_ns.get(ns) or {}
            for name in sorted(d):
                yield d[name]
        else:
            for n in sorted(self.by_ns):
                d = self.by_ns[n]
                for name in sorted(d):
                    yield d[name]


class Store:
    def __init__(
        self,
        *,
        crd_dir: Any = None,
        watch_history: int = 10000,
        watch_queue_limit: int = 1_000_000,
        gc_dangling: bool = True,
        namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease"),
    ) -> None:
        self.rv = 0
        self.watch_history = watch_history
        self.watch_queue_limit = watch_queue_limit
        self.gc_dangling = gc_dangling
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self.buckets: dict[tuple[str, str, str], Bucket] = {}
        self._by_uid: dict[str, tuple[Bucket, str, str]] = {}
        self._dependents: dict[str, set[str]] = {}
        self.on_types_changed: list[Callable[[], None]] = []
        # per request (set by the HTTP layer around a write): ?fieldValidation=, and the warnings to return
        self.field_validation: str | None = None
        self.warnings: builtins.list[str] = []
        for rt in builtin_types():
            self.register(rt)
        for ns in namespaces:
            self.create(self.rt("namespaces"), "", {"metadata": {"name": ns}})
        crd_rt = self.rt("customresourcedefinitions", "apiextensions.k8s.io")
        for crd in load_crd_files(crd_dir) if crd_dir is not None else load_crd_files():
            self.create(crd_rt, "", crd)

    # ------------------------------------------------------------ registry

    def register(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        # the versions of one CRD share the storage version's bucket (its objects are stored once)
        if rt.storage_key not in self.buckets:
            self.buckets[rt.storage_key] = Bucket(rt, self.watch_history)
        elif not rt.converted:
            self.buckets[rt.storage_key].rt = rt
        for cb in self.on_types_changed:
            cb()

    def rt(self, plural: str, group: str = "", version: str | None = None) -> ResourceType:
        """The type of `plural` in `group`: at `version`, or (None) at its storage version."""
        for rt in self.types.values():
            if rt.plural == plural and rt.group == group and (
                rt.version == version if version is not None else not rt.converted
            ):
                return rt
        raise KeyError(f"{plural}.{group}")

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def bucket(self, rt: ResourceType) -> Bucket:
        return self.buckets[rt.storage_key]

    # ------------------------------------------------------------ reads

    def get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.bucket(rt).get(ns if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def try_get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
        return self.bucket(rt).get(ns if rt.namespaced else "", name)

    def get_by_uid(self, uid: str) -> dict[str, Any] | None:
        loc = self._by_uid.get(uid)
        return loc[0].get(loc[1], loc[2]) if loc else None

    def dependents(self, owner_uid: str) -> builtins.list[dict[str, Any]]:
        """The objects with an ownerReference to `owner_uid` (from the owner index)."""
        out = []
        for uid in self._dependents.get(owner_uid, ()):
            obj = self.get_by_uid(uid)
            if obj is not None:
                out.append(obj)
        return out

    def list(
        self,
        rt: ResourceType,
        ns: str | None = None,
        label: Predicate | None = None,
        field: Predicate | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        items = [
            o
            for o in self.bucket(rt).iter(ns if rt.namespaced else None)
            if (label is None or label(o)) and (field is None or field(o))
        ]
        return items, self.rv

    def list_at(
        self,
        rt: ResourceType,
        ns: str | None = None,
        label: Predicate | None = None,
        field: Predicate | None = None,
        *,
        at: int | None = None,
        start: tuple[str, str] | None = None,
        limit: int = 0,
    ) -> tuple[builtins.list[dict[str, Any]], int, tuple[str, str] | None, int]:
        """A (page of a) list as of resourceVersion `at` (None: now), in (namespace, name) order.

        Past states are rebuilt from the resource's watch history: ApiError 410 when events after `at`
        were already evicted. Returns (items, rv of the snapshot, last key when more items follow,
        remaining matching items after this page).
        """
        b = self.bucket(rt)
        nsf = ns if rt.namespaced else None
        snap = self.rv if at is None else at
        overlay: dict[tuple[str, str], dict[str, Any] | None] = {}
        if at is not None and at < self.rv:
            if at < b.evicted_rv:
                raise errors.expired("The resourceVersion for the provided list is too old.")
            for ev in reversed(b.history):
                if ev.rv <= at:
                    break
                m = ev.obj["metadata"]
                key = (m.get("namespace", ""), m["name"])
                if nsf is not None and key[0] != nsf:
                    continue
                overlay[key] = None if ev.type == "ADDED" else ev.old

        def keys() -> Iterator[tuple[str, str]]:
            namespaces = [nsf] if nsf is not None else sorted(b.by_ns)
            if overlay:
                namespaces = sorted(set(namespaces) | {k[0] for k in overlay})
            for n in namespaces:
                if start is not None and n < start[0]:
                    continue
                extra = {k[1] for k in overlay if k[0] == n} if overlay else None
                if extra:
                    names: builtins.list[str] = sorted(set(b.sorted_names(n)) | extra)
                else:
                    names = b.sorted_names(n)
                i = bisect.bisect_right(names, start[1]) if start is not None and n == start[0] else 0
                for name in names[i:]:
                    yield (n, name)

        items: builtins.list[dict[str, Any]] = []
        last: tuple[str, str] | None = None
        more = False
        remaining = 0
        for key in keys():
            if start is not None and key <= start:
                continue
            obj = overlay[key] if key in overlay else b.get(*key)
            if obj is None or not ((label is None or label(obj)) and (field is None or field(obj))):
                continue
            if limit and len(items) >= limit:
                more = True
                if label is not None or field is not None:
                    break  # remainingItemCount is only reported without selectors (like kube-apiserver)
                if not overlay:  # count the rest without walking it: key and everything after it
                    names = b.sorted_names(key[0])
                    remaining = len(names) - bisect.bisect_left(names, key[1])
                    remaining += sum(
                        len(d) for n, d in b.by_ns.items() if n > key[0] and (nsf is None or n == nsf)
                    )
                    break
                remaining += 1
                continue
            items.append(obj)
            last = key
        return items, snap, (last if more else None), remaining

    def watch(
        self,
        rt: ResourceType,
        ns: str | None = None,
        resource_version: str | None = None,
        label: Predicate | None = None,
        field: Predicate | None = None,
    ) -> Watcher:
        """A watcher primed with what a watch from `resource_version` must see first.

        "" / "0": synthetic ADDED for every current object; N: replay of the events after N from the
        history ring, or ApiError 410 when events after N were already evicted.
        """
        b = self.bucket(rt)
        w = Watcher(b, ns if rt.namespaced else None, label, field, self.watch_queue_limit)
        if resource_version in (None, "", "0"):
            for o in b.iter(w.ns):
                if w._matches(o):
                    w.queue.append(WatchEvent("ADDED", o, None, self.rv))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {resource_version}") from None
            if since < b.evicted_rv:
                raise errors.gone(since, b.evicted_rv)
            replay = []
            for ev in reversed(b.history):
                if ev.rv <= since:
                    break
                replay.append(ev)
            for ev in reversed(replay):
                w.offer(ev)
        b.watchers.add(w)
        return w

    # ------------------------------------------------------------ commit path

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, b: Bucket, type_: str, obj: dict[str, Any], old: dict[str, Any] | None, rv: int) -> None:
        ev = WatchEvent(type_, obj, old, rv)
        if len(b.history) == b.history.maxlen and b.history:
            b.evicted_rv = b.history[0].rv
        b.history.append(ev)
        for w in list(b.watchers):
            w.offer(ev)

    def _index_owners(self, obj: dict[str, Any], add: bool) -> None:
        uid = obj["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner = ref.get("uid")
            if not owner:
                continue
            if add:
                self._dependents.setdefault(owner, set()).add(uid)
            else:
                deps = self._dependents.get(owner)
                if deps is not None:
                    deps.discard(uid)
                    if not deps:
                        del self._dependents[owner]

    def _commit_put(self, b: Bucket, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        meta = obj["metadata"]
        if (
            old is not None
            and meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            # the write that removes the last finalizer of a deleted object deletes it (no MODIFIED first)
            self._index_owners(old, False)
            self._index_owners(obj, True)
            return self._hard_delete(b, obj)
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        if old is not None:
            self._index_owners(old, False)
        b.put(obj)
        self._by_uid[meta["uid"]] = (b, meta.get("namespace", ""), meta["name"])
        self._index_owners(obj, True)
        self._emit(b, "ADDED" if old is None else "MODIFIED", obj, old, rv)
        if old is None and self.gc_dangling and meta.get("ownerReferences"):
            self._soon(self._gc_dangling, meta["uid"])
        return obj

    def _hard_delete(self, b: Bucket, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        stored = b.get(ns, meta["name"])  # what was there: kept on the event for `Exact` list reads
        b.pop(ns, meta["name"])
        self._by_uid.pop(meta["uid"], None)
        self._index_owners(obj, False)
        rv = self._next_rv()
        final = dict(obj)
        final["metadata"] = dict(meta, resourceVersion=str(rv))
        self._emit(b, "DELETED", final, stored, rv)
        rt = b.rt
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            self._unregister_crd(final)
        if meta["uid"] in self._dependents:
            self._soon(self._gc_owner_gone, meta["uid"])
        for ref in meta.get("ownerReferences") or []:
            self._soon(self._foreground_check, ref.get("uid", ""))
        if ns and rt.namespaced:
            self._soon(self._namespace_check, ns)
        return final

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fn(*args)
            return
        loop.call_soon(self._safe, fn, *args)

    @staticmethod
    def _safe(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except ApiError as e:
            log.debug("background %s: %s", fn.__name__, e)
        except Exception:  # pragma: no cover - a bug, but must not kill the loop
            log.exception("background %s failed", fn.__name__)

    # ------------------------------------------------------------ create

    def create(
        self, rt: ResourceType, ns: str, body: dict[str, Any], *, dry_run: bool = False, owned: bool = False
    ) -> dict[str, Any]:
        """Create; `owned=True`: the caller hands `body` over (e.g. freshly decoded JSON), no copy is made."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be an object")
        obj = body if owned else copy_obj(body)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if rt.namespaced:
            if meta.get("namespace") and ns and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = ns or meta.get("namespace") or "default"
            meta["namespace"] = ns
            nso = self.try_get(self.rt("namespaces"), "", ns)
            if nso is None:
                raise errors.namespace_not_found(ns)
            if nso["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{rt.plural} "{meta.get("name", "")}" is forbidden: unable to '
                    f"create new content in namespace {ns} because it is being terminated",
                    {"name": meta.get("name", ""), "kind": rt.plural},
                )
        else:
            meta.pop("namespace", None)
            ns = ""
        b = self.bucket(rt)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    rt,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "metadata.name",
                            "message": "Required value: name or generateName is required",
                        }
                    ],
                )
            for _ in range(100):
                cand = meta["generateName"] + "".join(random.choices(NAME_ALPHABET, k=5))
                if b.get(ns, cand) is None:
                    meta["name"] = cand
                    break
        name = meta["name"]
        if len(name) > 253 or not _DNS1123.match(name):
            raise errors.invalid(
                rt,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                        "character (e.g. 'example.com', regex used for validation is "
                        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                    }
                ],
            )
        if b.get(ns, name) is not None:
            if meta.get("generateName"):
                raise errors.generated_name_conflict(rt)
            raise errors.already_exists(rt, name)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        for k in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "managedFields",
            "selfLink",
        ):
            meta.pop(k, None)
        if rt.custom or rt.generation:
            meta["generation"] = 1
            if rt.status_subresource:
                obj.pop("status", None)
        else:
            meta.pop("generation", None)
        causes = validate_meta(meta)
        if causes:
            raise errors.invalid(rt, name, causes)
        self._admit_schema(rt, obj)
        self._prepare_builtin_create(rt, obj)
        if dry_run:
            meta["resourceVersion"] = ""
            return dict(obj)
        return self._commit_put(b, obj, None)

    def _admit_schema(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Custom resources: prune, default and validate against the CRD's structural schema. Built-in
        kinds: unknown fields, when the request asked for field validation (see builtin_fields)."""
        fv = (self.field_validation or "").lower()
        if not rt.custom:
            if fv:
                self._report_unknown(rt, unknown_fields(rt.group, rt.kind, obj, drop=fv != "strict"), fv)
            return
        if not rt.schema:
            return
        pruned, causes = schema.admit(obj, rt.schema)
        self._report_unknown(rt, pruned, fv)
        if rt.scale and rt.scale.get("specReplicasPath"):
            causes = [*causes, *schema.scale_replicas_causes(obj, rt.scale["specReplicasPath"])]
        if causes:
            raise errors.invalid(rt, obj["metadata"].get("name", ""), causes)

    def _report_unknown(self, rt: ResourceType, pruned: builtins.list[str], fv: str) -> None:
        """`fieldValidation`: Strict -> 400 naming every unknown field; Warn (default) -> warnings."""
        if pruned:
            unknown = [f'unknown field "{p}"' for p in pruned]
            if fv == "strict":
                raise errors.bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: {', '.join(unknown)}"
                )
            if fv != "ignore":
                self.warnings.extend(unknown)

    def _prepare_builtin_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.group == "" and rt.kind == "Pod":
            spec = obj.get("spec")
            causes = validate_pod_create(obj)
            if causes:
                raise errors.invalid(rt, obj["metadata"]["name"], causes)
            assert isinstance(spec, dict)
            default_pod_spec(spec, creating=True)
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
        elif rt.group == "batch" and rt.kind == "Job":
            causes = job_api.prepare_create(obj)
            if causes:
                raise errors.invalid(rt, obj["metadata"]["name"], causes)
        elif rt.group == "" and rt.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            try:
                new_types = types_from_crd(obj)
            except (KeyError, TypeError) as e:
                raise errors.invalid(
                    rt,
                    obj["metadata"]["name"],
                    [{"reason": "FieldValueRequired", "field": "spec", "message": f"Required value: {e}"}],
                ) from None
            names = obj["spec"]["names"]
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
            obj["status"] = {
                "acceptedNames": dict(names),
                "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": now_iso(),
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": now_iso(),
                    },
                ],
            }
            for t in new_types:
                self.register(t)

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        for t in types_from_crd(crd):
            b = self.buckets.pop(t.storage_key, None)
            self.types.pop(t.key, None)
            if b:
                for w in list(b.watchers):
                    w.close()
                for o in list(b.iter(None)):
                    self._by_uid.pop(o["metadata"]["uid"], None)
        for cb in self.on_types_changed:
            cb()

    # ------------------------------------------------------------ update / patch

    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be an object")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        current = self.get(rt, ns, name)
        return self._apply_update(rt, current, copy_obj(body), subresource, dry_run)

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        if patch_type == APPLY_PATCH:
            if not field_manager:
                raise errors.bad_request(
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch"
                )
            current = self.try_get(rt, ns, name)
            if current is None:
                if subresource:
                    raise errors.not_found(rt, name)
                body = copy_obj(patch)
                body.setdefault("metadata", {})["name"] = name
                return self.create(rt, ns, body, dry_run=dry_run)
        else:
            current = self.get(rt, ns, name)
        if patch_type == STRATEGIC_PATCH and not rt.strategic:
            raise errors.unsupported_media_type(patch_type, [JSON_PATCH, MERGE_PATCH, APPLY_PATCH])
        try:
            if patch_type == JSON_PATCH:
                new = json_patch(current, patch)
            elif patch_type == MERGE_PATCH:
                if not isinstance(patch, dict):
                    raise PatchDecodeError("merge patch must be an object")
                new = self._writable(rt, merge_patch(current, patch))
            elif patch_type in (STRATEGIC_PATCH, APPLY_PATCH):
                if not isinstance(patch, dict):
                    raise PatchDecodeError("patch must be an object")
                merged = strategic_merge(current, patch) if rt.strategic else merge_patch(current, patch)
                # a status write of a built-in type only takes `status` (and labels/annotations) from the
                # result and never mutates it: the merge result (sharing unchanged parts) needs no copy
                new = merged if subresource == "status" and not rt.custom else self._writable(rt, merged)
            else:
                raise errors.unsupported_media_type(patch_type, PATCH_TYPES)
        except (PatchError, PatchDecodeError) as e:
            raise patch_failure(e) from None
        return self._apply_update(rt, current, patched_object(new), subresource, dry_run)

    @staticmethod
    def _writable(rt: ResourceType, merged: Any) -> Any:
        """A patch result `_apply_update` may modify. Merges share unchanged subtrees with the stored object;
        for built-in kinds only the top level and `metadata` are written to (pod defaulting only fills
        missing keys, and a stored spec has them all), so copying those two suffices. Custom resources are
        pruned/defaulted in place by the schema: a deep copy."""
        if rt.custom or rt.generation or not isinstance(merged, dict):
            return copy_obj(merged)  # (Jobs: defaulting fills in the template's spec)
        out = dict(merged)
        if isinstance(out.get("metadata"), dict):
            out["metadata"] = dict(out["metadata"])
        return out

    def _apply_update(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        cmeta = current["metadata"]
        nmeta = new.get("metadata")
        if not isinstance(nmeta, dict):
            nmeta = new["metadata"] = {}
        name = cmeta["name"]
        if nmeta.get("uid") and nmeta["uid"] != cmeta["uid"]:
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {nmeta['uid']}, UID in "
                f"object meta: {cmeta['uid']}",
            )
        if nmeta.get("resourceVersion") and nmeta["resourceVersion"] != cmeta["resourceVersion"]:
            raise errors.conflict(rt, name, errors.STALE)
        if subresource == "status":
            out = copy_obj(current) if rt.custom and rt.schema else dict(current)  # admitted in place
            out["metadata"] = dict(cmeta)
            if not rt.custom:
                # built-in status strategies (pods, nodes) only pin spec (and ownerReferences): labels and
                # annotations still change; custom resources ignore everything but status
                for k in ("labels", "annotations"):
                    if nmeta.get(k):
                        out["metadata"][k] = nmeta[k]
                    else:
                        out["metadata"].pop(k, None)
                causes = validate_meta(out["metadata"])
                if causes:
                    raise errors.invalid(rt, name, causes)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            self._admit_schema(rt, out)
        else:
            out = new
            for k in (
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "generateName",
            ):
                if k in cmeta:
                    nmeta[k] = cmeta[k]
                else:
                    nmeta.pop(k, None)
            nmeta.pop("managedFields", None)
            out["apiVersion"], out["kind"] = rt.api_version, rt.kind
            if rt.status_subresource:
                if "status" in current:
                    out["status"] = current["status"]
                else:
                    out.pop("status", None)
            causes = validate_meta(nmeta)
            if causes:
                raise errors.invalid(rt, name, causes)
            if cmeta.get("deletionTimestamp"):
                added = [f for f in nmeta.get("finalizers") or [] if f not in (cmeta.get("finalizers") or [])]
                if added:
                    raise errors.invalid(
                        rt,
                        name,
                        [
                            {
                                "reason": "FieldValueForbidden",
                                "field": "metadata.finalizers",
                                "message": f"Forbidden: no new finalizers can be added if the object is being deleted, "
                                f"found new finalizers {added}",
                            }
                        ],
                    )
            if rt.group == "" and rt.kind == "Pod":
                spec = out.get("spec")
                if not isinstance(spec, dict):
                    spec = out["spec"] = {}
                default_pod_spec(spec, creating=False)
                diff = validate_pod_update(current.get("spec") or {}, spec)
                if diff is not None:
                    raise errors.invalid(
                        rt,
                        name,
                        [{"reason": "FieldValueForbidden", "field": "spec", "message": FORBIDDEN_UPDATE}],
                        suffix=diff,
                    )
            if rt.group == "batch" and rt.kind == "Job":
                causes = job_api.validate_update(current, out)
                if causes:
                    raise errors.invalid(rt, name, causes)
            self._admit_schema(rt, out)
            if rt.custom or rt.generation:
                skip = ("metadata", "status") if rt.status_subresource else ("metadata",)
                if any(out.get(k) != current.get(k) for k in set(out) | set(current) if k not in skip):
                    nmeta["generation"] = int(cmeta.get("generation") or 1) + 1
        out["metadata"]["resourceVersion"] = cmeta["resourceVersion"]
        if out == current:
            return current  # a no-op write does not bump the resourceVersion (like etcd3 storage)
        if dry_run:
            return out
        b = self.bucket(rt)
        result = self._commit_put(b, out, current)
        if (
            rt.kind == "CustomResourceDefinition"
            and rt.group == "apiextensions.k8s.io"
            and subresource is None
        ):
            for t in types_from_crd(result):  # e.g. new printer columns or versions
                self.register(t)
        return result

    def kubelet_pod_status(self, ns: str, name: str, uid: str, status: dict[str, Any]) -> dict[str, Any]:
        """The in-process kubelets' status write: the same result as their strategic merge patch of
        `pods/status` (conditions merged by type, a null field deletes it, other keys replaced) without the
        generic patch machinery. 409 on a uid mismatch, 404 when the pod is gone."""
        prt = self.rt("pods")
        b = self.bucket(prt)
        current = b.get(ns, name)
        if current is None:
            raise errors.not_found(prt, name)
        cmeta = current["metadata"]
        if cmeta["uid"] != uid:
            raise errors.conflict(
                prt,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {cmeta['uid']}",
            )
        cur = current.get("status") or {}
        new = dict(cur)
        for k, v in status.items():
            if k == "conditions":
                conds = list(cur.get("conditions") or [])
                for c in v:
                    idx = next((i for i, o in enumerate(conds) if o.get("type") == c["type"]), None)
                    if idx is None:
                        conds.append({ck: cv for ck, cv in c.items() if cv is not None})
                    else:
                        merged = dict(conds[idx])
                        for ck, cv in c.items():
                            if cv is None:
                                merged.pop(ck, None)
                            else:
                                merged[ck] = cv
                        conds[idx] = merged
                new["conditions"] = conds
            elif v is None:
                new.pop(k, None)
            elif k in ("podIPs", "hostIPs") and isinstance(cur.get(k), list):
                new[k] = list(cur[k]) + [x for x in v if x not in cur[k]]
            else:
                new[k] = v
        out = dict(current)  # (the kubelet only writes when its status differs: no equality check here)
        out["metadata"] = dict(cmeta)
        out["status"] = new
        return self._commit_put(b, out, current)

    # ------------------------------------------------------------ delete

    def delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        *,
        grace_period: int | None = None,
        preconditions: dict[str, Any] | None = None,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        current = self.get(rt, ns, name)
        cmeta = current["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != cmeta["uid"]:
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {cmeta['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != cmeta["resourceVersion"]:
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{cmeta['resourceVersion']}",
            )
        grace = 0
        is_pod = rt.group == "" and rt.kind == "Pod"
        if is_pod:
            spec = current.get("spec") or {}
            grace = (
                grace_period
                if grace_period is not None
                else int(spec.get("terminationGracePeriodSeconds", 30))
            )
            phase = (current.get("status") or {}).get("phase")
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            grace = max(grace, 0)
        if dry_run:
            return current
        if propagation is None and rt.group == "batch" and rt.kind == "Job":
            propagation = "Orphan"  # batch/v1 Jobs' DefaultGarbageCollectionPolicy (kubectl sends Background)
        if propagation == "Orphan":
            self._orphan_dependents(cmeta["uid"])
        finalizers = list(cmeta.get("finalizers") or [])
        if (
            propagation == "Foreground"
            and self._dependents.get(cmeta["uid"])
            and "foregroundDeletion" not in finalizers
        ):
            finalizers.append("foregroundDeletion")
        if rt.group == "" and rt.kind == "Namespace":
            return self._delete_namespace(current)
        if cmeta.get("deletionTimestamp"):
            old_grace = cmeta.get("deletionGracePeriodSeconds") or 0
            if grace >= old_grace and finalizers == (cmeta.get("finalizers") or []):
                if not finalizers and old_grace == 0:
                    return self._hard_delete(self.bucket(rt), current)
                return current
        elif grace == 0 and not finalizers:
            return self._hard_delete(self.bucket(rt), current)
        out = dict(current)
        out["metadata"] = meta = dict(cmeta)
        meta["deletionTimestamp"] = now_iso(grace)
        meta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            meta["finalizers"] = finalizers
        if grace == 0 and not finalizers:
            return self._hard_delete(self.bucket(rt), out)
        result = self._commit_put(self.bucket(rt), out, current)
        if "foregroundDeletion" in finalizers:
            self._soon(self._gc_owner_gone, cmeta["uid"])
        return result

    def delete_collection(
        self,
        rt: ResourceType,
        ns: str | None,
        label: Predicate | None = None,
        field: Predicate | None = None,
        grace_period: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        items, _ = self.list(rt, ns, label, field)
        out = []
        for o in items:
            try:
                out.append(
                    self.delete(
                        rt,
                        o["metadata"].get("namespace", ""),
                        o["metadata"]["name"],
                        grace_period=grace_period,
                    )
                )
            except ApiError:
                pass
        return out

    # ------------------------------------------------------------ garbage collection

    def _orphan_dependents(self, owner_uid: str) -> None:
        for dep in list(self._dependents.get(owner_uid, ())):
            loc = self._by_uid.get(dep)
            obj = loc[0].get(loc[1], loc[2]) if loc else None
            if obj is None or loc is None:
                continue
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            self.patch(
                loc[0].rt, loc[1], loc[2], MERGE_PATCH, {"metadata": {"ownerReferences": refs or None}}
            )

    def _gc_owner_gone(self, owner_uid: str) -> None:
        """Delete (or detach) the dependents of an owner that is gone or being deleted in the foreground."""
        for dep in list(self._dependents.get(owner_uid, ())):
            loc = self._by_uid.get(dep)
            obj = loc[0].get(loc[1], loc[2]) if loc else None
            if obj is None or (obj["metadata"].get("deletionTimestamp") and loc and loc[0].rt.kind != "Pod"):
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            others = [
                r
                for r in refs
                if r.get("uid") != owner_uid
                and r.get("uid") in self._by_uid
                and not self._being_deleted(r["uid"])
            ]
            assert loc is not None
            if others:
                keep = [r for r in refs if r.get("uid") != owner_uid]
                self.patch(loc[0].rt, loc[1], loc[2], MERGE_PATCH, {"metadata": {"ownerReferences": keep}})
            elif not obj["metadata"].get("deletionTimestamp"):
                self.delete(loc[0].rt, loc[1], loc[2], propagation="Background")

    def _being_deleted(self, uid: str) -> bool:
        o = self.get_by_uid(uid)
        return bool(o and o["metadata"].get("deletionTimestamp"))

    def _gc_dangling(self, uid: str) -> None:
        obj = self.get_by_uid(uid)
        if obj is None:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and all(r.get("uid") not in self._by_uid for r in refs):
            loc = self._by_uid[uid]
            self.delete(loc[0].rt, loc[1], loc[2], propagation="Background")

    def _foreground_check(self, owner_uid: str) -> None:
        owner = self.get_by_uid(owner_uid)
        if owner is None or owner_uid in self._dependents:
            return
        fins = owner["metadata"].get("finalizers") or []
        if "foregroundDeletion" in fins:
            loc = self._by_uid[owner_uid]
            rest = [f for f in fins if f != "foregroundDeletion"]
            self.patch(loc[0].rt, loc[1], loc[2], MERGE_PATCH, {"metadata": {"finalizers": rest or None}})

    # ------------------------------------------------------------ namespaces

    def _delete_namespace(self, ns_obj: dict[str, Any]) -> dict[str, Any]:
        name = ns_obj["metadata"]["name"]
        nrt = self.rt("namespaces")
        if not ns_obj["metadata"].get("deletionTimestamp"):
            out = dict(ns_obj)
            out["metadata"] = dict(
                ns_obj["metadata"], deletionTimestamp=now_iso(), deletionGracePeriodSeconds=0
            )
            out["status"] = {"phase": "Terminating"}
            out["metadata"].setdefault("finalizers", [])
            ns_obj = self._commit_put(self.bucket(nrt), out, ns_obj)
        for b in list(self.buckets.values()):
            if b.rt.namespaced:
                for o in list(b.iter(name)):
                    if not o["metadata"].get("deletionTimestamp"):
                        try:
                            self.delete(b.rt, name, o["metadata"]["name"])
                        except ApiError:
                            pass
        self._namespace_check(name)
        return self.try_get(nrt, "", name) or ns_obj

    def _namespace_check(self, ns: str) -> None:
        nrt = self.rt("namespaces")
        nso = self.try_get(nrt, "", ns)
        if nso is None or not nso["metadata"].get("deletionTimestamp"):
            return
        if any(ns in b.by_ns for b in self.buckets.values() if b.rt.namespaced):
            return
        self._hard_delete(self.bucket(nrt), nso)

    # ------------------------------------------------------------ subresources

    def bind(self, ns: str, name: str, node: str) -> dict[str, Any]:
        prt = self.rt("pods")
        pod = self.get(prt, ns, name)
        if pod.get("spec", {}).get("nodeName"):
            raise errors.conflict(
                prt, name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"'
            )
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict(prt, name, "pod is being deleted, cannot be assigned to a host")
        out = copy_obj(pod)
        out["spec"]["nodeName"] = node
        conds = [
            c for c in out.setdefault("status", {}).get("conditions") or [] if c.get("type") != "PodScheduled"
        ]
        conds.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_iso()}
        )
        out["status"]["conditions"] = conds
        return self._commit_put(self.bucket(prt), out, pod)

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.get(rt, ns, name)
        assert rt.scale is not None
        meta = obj["metadata"]
        status: dict[str, Any] = {
            "replicas": int(_jsonpath(obj, rt.scale.get("statusReplicasPath", "")) or 0)
        }
        sel = _jsonpath(obj, rt.scale.get("labelSelectorPath", ""))
        if sel:
            status["selector"] = sel
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": int(_jsonpath(obj, rt.scale.get("specReplicasPath", "")) or 0)},
            "status": status,
        }

    def set_scale(self, rt: ResourceType, ns: str, name: str, scale: dict[str, Any]) -> dict[str, Any]:
        assert rt.scale is not None
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                rt,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                    }
                ],
            )
        path = [p for p in rt.scale["specReplicasPath"].split(".") if p]
        patch: dict[str, Any] = {}
        cur = patch
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = replicas
        if rv:
            patch["metadata"] = {"resourceVersion": rv}
        self.patch(rt, ns, name, MERGE_PATCH, patch)
        return self.get_scale(rt, ns, name)

    def patch_scale(
        self, rt: ResourceType, ns: str, name: str, patch_type: str, patch: Any
    ) -> dict[str, Any]:
        scale = self.get_scale(rt, ns, name)
        try:
            if patch_type == JSON_PATCH:
                new = json_patch(scale, patch)
            else:
                new = merge_patch(scale, patch)
        except PatchError:
            raise errors.json_patch_failed() from None
        except PatchDecodeError as e:
            raise errors.bad_request(str(e)) from None
        return self.set_scale(rt, ns, name, new)


def _jsonpath(obj: Any, path: str) -> Any:
    """`.spec.replicas`-style paths (what CRD scale subresources use)."""
    cur = obj
    for p in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur
