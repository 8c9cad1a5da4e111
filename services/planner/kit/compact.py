"""Memory-lean copies of pods for a planner that tracks many (`compact_pod`).

Every workload planner holds the pods it controls between passes; a pod decoded from API-server JSON
costs ~5 KB, and the planner reads a small part of it. One place defines what is kept, so the planner
service and every workload plan on the same shape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

from schemas.constants import (
    ANNOTATION_DELETION_COST,
    ANNOTATION_INPLACE_GRACE,
    ANNOTATION_INPLACE_GRACE_LEGACY,
    ANNOTATION_INPLACE_STATE,
    ANNOTATION_INPLACE_STATE_LEGACY,
    ANNOTATION_RUNTIME_CONTAINERS_META,
    CONDITION_CONTAINERS_READY,
    CONDITION_INPLACE_UPDATE_READY,
    CONDITION_KRUISE_POD_READY,
    CONDITION_READY,
)
from schemas.kube import (
    ContainerRef,
    ContainerStatus,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodCondition,
    PodSpecView,
    PodStatusView,
    ReadinessGate,
)

T = TypeVar("T")

_PLANNER_ANNOTATIONS = frozenset(
    {
        ANNOTATION_INPLACE_STATE,
        ANNOTATION_INPLACE_STATE_LEGACY,
        ANNOTATION_INPLACE_GRACE,
        ANNOTATION_INPLACE_GRACE_LEGACY,
        ANNOTATION_DELETION_COST,
        ANNOTATION_RUNTIME_CONTAINERS_META,
    }
)
_PLANNER_CONDITIONS = frozenset(
    {CONDITION_READY, CONDITION_CONTAINERS_READY, CONDITION_INPLACE_UPDATE_READY, CONDITION_KRUISE_POD_READY}
)


def _i(value: str) -> str:
    return sys.intern(value)


_SHARED: dict[object, Any] = {}
_SHARED_MAX = 200_000
_EMPTY_DICT: dict[str, str] = {}
_EMPTY_LIST: list[Any] = []


def _shared(key: object, make: Callable[[], T]) -> T:
    """One shared (flyweight) instance per distinct value: pods of one CloneSet mostly have identical
    owner references, container lists, readiness gates and container statuses."""
    got = _SHARED.get(key)
    if got is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        got = _SHARED[key] = make()
    return cast(T, got)


def compact_pod(pod: Pod) -> Pod:
    """A memory-lean copy of ``pod`` holding only what the planner reads.

    A pod decoded from API-server JSON costs ~5 KB in CPython, mostly in per-pod copies of the same
    strings (label keys, revision names, condition types, images), in identical sub-objects (owner
    reference, containers, readiness gates, container statuses) and in fields the planner never reads
    (IPs, container IDs and states, probe times). A planner service that tracks many pods can keep
    ``compact_pod(p)`` instead of ``p``: strings are interned, identical sub-objects shared (flyweights),
    and fields, conditions and annotations the planner never reads are dropped (annotations kept:
    in-place state/grace, runtime container meta, deletion cost; conditions kept: Ready,
    ContainersReady, InPlaceUpdateReady, KruisePodReady and any readiness-gate condition). Planning on
    compacted pods gives the same plan. Compacted pods share sub-objects: they must not be mutated.
    """
    meta = pod.metadata
    labels = {_i(k): _i(v) if len(v) <= 64 else v for k, v in meta.labels.items()}
    annotations = {_i(k): v for k, v in meta.annotations.items() if k in _PLANNER_ANNOTATIONS}
    if not annotations and meta.annotations:
        # keep one real annotation: the planner must still see that the pod has an annotations map
        # (it decides between "add key" and "create the map" on that)
        k = min(meta.annotations)
        annotations = {_i(k): meta.annotations[k]}
    elif not annotations:
        annotations = _EMPTY_DICT
    refs = tuple(
        (r.api_version, r.kind, r.name, r.uid, r.controller, r.block_owner_deletion)
        for r in meta.owner_references
    )
    owners: list[OwnerReference] = _shared(
        ("owners", refs),
        lambda: [
            OwnerReference(
                api_version=_i(a), kind=_i(k), name=_i(n), uid=_i(u), controller=c, block_owner_deletion=b
            )
            for a, k, n, u, c, b in refs
        ],
    )
    new_meta = ObjectMeta(
        name=meta.name,
        namespace=_i(meta.namespace),
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
        creation_timestamp=_i(meta.creation_timestamp) if meta.creation_timestamp else None,
        deletion_timestamp=meta.deletion_timestamp,
        labels=labels,
        annotations=annotations,
        owner_references=owners,
        finalizers=[_i(f) for f in meta.finalizers] if meta.finalizers else _EMPTY_LIST,
    )
    ckey = tuple((c.name, c.image) for c in pod.spec.containers)
    gkey = tuple(g.condition_type for g in pod.spec.readiness_gates)
    spec = PodSpecView(
        node_name=_i(pod.spec.node_name),
        containers=_shared(
            ("containers", ckey), lambda: [ContainerRef(name=_i(n), image=_i(im)) for n, im in ckey]
        ),
        readiness_gates=_shared(("gates", gkey), lambda: [ReadinessGate(condition_type=_i(t)) for t in gkey]),
        affinity=pod.spec.affinity,
    )
    st = pod.status
    wanted = _PLANNER_CONDITIONS.union(gkey)
    skey = tuple((c.name, c.image, c.image_id, c.ready, c.restart_count) for c in st.container_statuses)
    status = PodStatusView(
        phase=_i(st.phase),
        conditions=[
            PodCondition(
                type=_i(c.type),
                status=_i(c.status),
                reason=_i(c.reason),
                message=c.message,
                last_transition_time=_i(c.last_transition_time) if c.last_transition_time else None,
            )
            for c in st.conditions
            if c.type in wanted
        ],
        container_statuses=_shared(
            ("statuses", skey),
            lambda: [
                ContainerStatus(name=_i(n), image=_i(im), image_id=_i(iid), ready=r, restart_count=rc)
                for n, im, iid, r, rc in skey
            ],
        ),
    )
    return Pod(metadata=new_meta, spec=spec, status=status)
