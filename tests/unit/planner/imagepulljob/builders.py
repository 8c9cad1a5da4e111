"""Builders for the image pre-download tests: jobs, NodeImages, nodes and progress reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.imagepulljob import ImagePullJob
from schemas.kube import Node, Pod
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from services.planner.kit.timeutil import format_time

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
JOB_UID = "job-uid-1"


def ago(seconds: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds))


def job(
    *,
    image: str = "nginx:1.21",
    parallelism: Any = None,
    selector: dict[str, Any] | None = None,
    pod_selector: dict[str, Any] | None = None,
    completion: dict[str, Any] | None = None,
    pull_policy: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
    owner: dict[str, Any] | None = None,
    pull_secrets: list[str] | None = None,
    uid: str = JOB_UID,
    **meta: Any,
) -> ImagePullJob:
    spec: dict[str, Any] = {
        "image": image,
        "completionPolicy": completion or {"type": "Always"},
        "pullPolicy": pull_policy if pull_policy is not None else {"timeoutSeconds": 600, "backoffLimit": 3},
        "imagePullPolicy": "IfNotPresent",
    }
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if selector is not None:
        spec["selector"] = selector
    if pod_selector is not None:
        spec["podSelector"] = pod_selector
    if pull_secrets is not None:
        spec["pullSecrets"] = pull_secrets
    metadata: dict[str, Any] = {
        "name": "job",
        "namespace": "default",
        "uid": uid,
        "resourceVersion": "7",
        "finalizers": ["apps.kruise.io/deletion-protection"] if finalizers is None else finalizers,
        **meta,
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return msgspec.convert({"metadata": metadata, "spec": spec, "status": status or {}}, ImagePullJob)


def owner_ref(uid: str = JOB_UID, name: str = "job") -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "ImagePullJob",
        "name": name,
        "namespace": "default",
        "uid": uid,
    }


def node_image(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    tags: dict[str, list[dict[str, Any]]] | None = None,
    statuses: dict[str, list[dict[str, Any]]] | None = None,
    rv: str = "1",
    secrets: dict[str, list[dict[str, str]]] | None = None,
    **status: Any,
) -> NodeImage:
    images = {
        img: {"tags": ts, **({"pullSecrets": secrets[img]} if secrets and img in secrets else {})}
        for img, ts in (tags or {}).items()
    }
    image_statuses = {img: {"tags": ts} for img, ts in (statuses or {}).items()}
    return msgspec.convert(
        {
            "metadata": {"name": name, "uid": f"ni-{name}", "resourceVersion": rv, "labels": labels or {}},
            "spec": {"images": images},
            "status": {"imageStatuses": image_statuses, **status},
        },
        NodeImage,
    )


def owned_tag(
    tag: str = "1.21", version: int = 0, uid: str = JOB_UID, created: str | None = None, **policy: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tag": tag,
        "version": version,
        "ownerReferences": [owner_ref(uid)],
        "createdAt": created or ago(5),
    }
    if policy:
        out["pullPolicy"] = policy
    return out


def tag_status(
    phase: str, tag: str = "1.21", version: int = 0, completed: str | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"tag": tag, "phase": phase, "version": version, **extra}
    if completed is not None:
        out["completionTime"] = completed
    elif phase in ("Succeeded", "Failed"):
        out["completionTime"] = ago(1)
    return out


def node(
    name: str,
    *,
    ready: bool = True,
    since: float = 3600,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
) -> Node:
    meta: dict[str, Any] = {"name": name, "uid": f"node-{name}", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    return msgspec.convert(
        {
            "metadata": meta,
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": ago(since),
                    }
                ]
            },
        },
        Node,
    )


def pod(
    name: str,
    node_name: str,
    *,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    phase: str = "Running",
    created: float = 100,
    ready: bool = True,
) -> Pod:
    return msgspec.convert(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"pod-{name}",
                "labels": labels or {},
                "creationTimestamp": ago(created),
            },
            "spec": {"nodeName": node_name, "containers": [{"name": "main", "image": "nginx:1.20"}]},
            "status": {
                "phase": phase,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": ago(created),
                    }
                ],
            },
        },
        Pod,
    )


def result(node_name: str, phase: str, *, image: str = "nginx", tag: str = "1.21", version: int = 0,
           percent: int = 0, attempt: int = 0, ended: float = 0, **kw: Any) -> PullResult:
    """A node agent's report for the NodeImage `node_image(node_name)` built here (uid `ni-<name>`)."""
    done = phase in ("succeeded", "failed")
    return msgspec.convert({
        "metadata": {"name": node_name, "uid": f"{node_name}/{image}:{tag}"},
        "node": node_name, "image": f"{image}:{tag}", "version": version, "phase": phase, "progress": percent,
        "command_id": f"nodeimage/ni-{node_name}/pull/{image}:{tag}/{version}/{attempt}",
        "start_time": kw.pop("start_time", ago(ended + 9)),
        **({"completion_time": ago(ended)} if done else {}),
        **kw,
    }, PullResult)
