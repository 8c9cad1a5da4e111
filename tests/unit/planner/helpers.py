"""Builders for planner tests: CloneSets, revisions and pods in the Kruise's test tables shorthand.

Pods are built as Kubernetes JSON dicts (what the API server would return) and converted to the typed
views, so the same objects can be fed to the planner and mutated by the simulated cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.kube import ControllerRevision, Pod
from services.planner.cloneset.revision import build_revision
from services.planner.kit.revision import short_hash
from services.planner.kit.timeutil import format_time

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CS_UID = "cs-uid-0001"


def cs_dict(
    *,
    name: str = "demo",
    replicas: int | None = 5,
    image: str = "nginx:1.0",
    strategy: str | None = "ReCreate",
    partition: Any = None,
    max_unavailable: Any = None,
    max_surge: Any = None,
    paused: bool = False,
    grace: int | None = None,
    min_ready: int = 0,
    pods_to_delete: list[str] | None = None,
    scale_max_unavailable: Any = None,
    lifecycle: dict[str, Any] | None = None,
    pds: int | None = None,
    generation: int = 1,
    priority: dict[str, Any] | None = None,
    scatter: list[dict[str, str]] | None = None,
    extra_containers: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    us: dict[str, Any] = {}
    if strategy is not None:
        us["type"] = strategy
    if partition is not None:
        us["partition"] = partition
    if max_unavailable is not None:
        us["maxUnavailable"] = max_unavailable
    if max_surge is not None:
        us["maxSurge"] = max_surge
    if paused:
        us["paused"] = True
    if grace is not None:
        us["inPlaceUpdateStrategy"] = {"gracePeriodSeconds": grace}
    if priority is not None:
        us["priorityStrategy"] = priority
    if scatter is not None:
        us["scatterStrategy"] = scatter
    ss: dict[str, Any] = {}
    if pods_to_delete:
        ss["podsToDelete"] = pods_to_delete
    if scale_max_unavailable is not None:
        ss["maxUnavailable"] = scale_max_unavailable
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}, *(extra_containers or [])]},
        },
        "updateStrategy": us,
        "scaleStrategy": ss,
        "minReadySeconds": min_ready,
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if lifecycle is not None:
        spec["lifecycle"] = lifecycle
    if pds is not None:
        spec["progressDeadlineSeconds"] = pds
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": CS_UID,
            "generation": generation,
            "resourceVersion": "100",
            "labels": labels or {},
        },
        "spec": spec,
        "status": {},
    }


def cs_obj(d: dict[str, Any]) -> CloneSet:
    return msgspec.convert(d, CloneSet)


def revision_dict(cs: dict[str, Any], number: int = 1) -> dict[str, Any]:
    rev = build_revision(cs_obj(cs), number, 0)
    out: dict[str, Any] = msgspec.to_builtins(rev)
    out["metadata"]["uid"] = f"rev-uid-{rev.metadata.name}"
    return out


def rev_name(cs: dict[str, Any]) -> str:
    return build_revision(cs_obj(cs), 1, 0).metadata.name


def pod_dict(
    cs: dict[str, Any],
    revision: str,
    index: int,
    *,
    ready: bool = True,
    state: str | None = "Normal",
    specified_delete: bool = False,
    node: str | None = None,
    image: str | None = None,
    ready_since: datetime | None = None,
    phase: str = "Running",
    gate: bool = True,
    inplace_ready: bool | None = True,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime | None = None,
    restarts: int = 0,
    deleting: bool = False,
) -> dict[str, Any]:
    name = f"{cs['metadata']['name']}-p{index:03d}"
    lab: dict[str, str] = dict(cs["spec"]["template"]["metadata"]["labels"])
    lab["controller-revision-hash"] = revision
    lab["pod-template-hash"] = short_hash(revision)
    lab["apps.kruise.io/cloneset-instance-id"] = f"p{index:03d}"
    if state is not None:
        lab["lifecycle.apps.kruise.io/state"] = state
    if specified_delete:
        lab["apps.kruise.io/specified-delete"] = "true"
    lab.update(labels or {})
    img = image or cs["spec"]["template"]["spec"]["containers"][0]["image"]
    since = format_time(ready_since or NOW - timedelta(hours=1))
    conds: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    if phase == "Running":
        conds.append(
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": since}
        )
        conds.append({"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since})
        statuses.append(
            {
                "name": "main",
                "image": img,
                "imageID": f"docker://sha-{img}",
                "ready": ready,
                "restartCount": restarts,
            }
        )
    if gate and inplace_ready is not None:
        conds.append(
            {
                "type": "InPlaceUpdateReady",
                "status": "True" if inplace_ready else "False",
                "lastTransitionTime": since,
            }
        )
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "resourceVersion": "1",
        "labels": lab,
        "creationTimestamp": format_time(created or NOW - timedelta(hours=2) + timedelta(seconds=index)),
        "ownerReferences": [
            {
                "apiVersion": "apps.kruise.io/v1alpha1",
                "kind": "CloneSet",
                "name": cs["metadata"]["name"],
                "uid": CS_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations:  # the API server omits empty maps
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "nodeName": node if node is not None else f"node-{index % 3}",
            "containers": [{"name": "main", "image": img}],
            "readinessGates": [{"conditionType": "InPlaceUpdateReady"}] if gate else [],
        },
        "status": {"phase": phase, "conditions": conds, "containerStatuses": statuses},
    }


def pod_obj(d: dict[str, Any]) -> Pod:
    return msgspec.convert(d, Pod)


def rev_obj(d: dict[str, Any]) -> ControllerRevision:
    return msgspec.convert(d, ControllerRevision)


def with_image(cs: dict[str, Any], image: str) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(cs))
    out["spec"]["template"]["spec"]["containers"][0]["image"] = image
    out["metadata"]["generation"] = cs["metadata"]["generation"] + 1
    return out
