"""API operations on NodeImages and ImagePullJobs, with their preconditions.

Writes to a NodeImage are guarded by the resourceVersion they were decided on (Kruise updates it with
optimistic concurrency): a write planned on a stale NodeImage is refused by the API server and re-planned
on the newer one. Finalizer edits are JSON patches that test the uid only, so they never invalidate
the status write planned in the same pass.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.imagepulljob import ImagePullJob
from schemas.kube import JsonObject, Node
from schemas.messages import IMAGE_PULL_JOBS, NODE_IMAGES, CreateOp, DeleteOp, PatchOp
from schemas.nodeimage import ImageSpec, NodeImage, NodeImageStatus


def _guard(ni: NodeImage) -> JsonObject:
    return {"resourceVersion": ni.metadata.resource_version} if ni.metadata.resource_version else {}


def image_spec_json(spec: ImageSpec) -> JsonObject:
    """One `spec.images` entry in full, so a merge patch replaces it (absent optional parts are nulls)."""
    body: JsonObject = msgspec.to_builtins(spec)
    body["tags"] = msgspec.to_builtins(spec.tags)
    body["pullSecrets"] = msgspec.to_builtins(spec.pull_secrets) or None
    body["sandboxConfig"] = (
        msgspec.to_builtins(spec.sandbox_config) if spec.sandbox_config is not None else None
    )
    return body


def node_image_spec_patch(
    ni: NodeImage, images: dict[str, ImageSpec | None], labels: dict[str, str] | None = None
) -> PatchOp:
    """Set (or, with None, remove) entries of `spec.images`; with `labels`, also make the labels exactly those."""
    body: JsonObject = {}
    if images:
        body["spec"] = {
            "images": {k: image_spec_json(v) if v is not None else None for k, v in images.items()}
        }
    meta: JsonObject = dict(_guard(ni))
    if labels is not None:
        new: dict[str, str | None] = {k: None for k in ni.metadata.labels if k not in labels}
        new.update(labels)
        meta["labels"] = new
    if meta:
        body["metadata"] = meta
    return PatchOp(resource=NODE_IMAGES, name=ni.metadata.name, patch_type="merge", patch=body)


def node_image_status_json(status: NodeImageStatus, old: NodeImageStatus) -> JsonObject:
    """The whole status as a merge patch: counters always present, image entries gone since `old` nulled."""
    body: JsonObject = msgspec.to_builtins(status)
    for key in ("desired", "succeeded", "failed", "pulling", "waiting"):
        body[key] = getattr(status, key)
    images: dict[str, Any] = {k: msgspec.to_builtins(v) for k, v in status.image_statuses.items()}
    for gone in set(old.image_statuses) - set(status.image_statuses):
        images[gone] = None
    body["imageStatuses"] = images
    return body


def node_image_status_patch(ni: NodeImage, status: NodeImageStatus) -> PatchOp:
    body: JsonObject = {"status": node_image_status_json(status, ni.status)}
    if guard := _guard(ni):
        body["metadata"] = guard
    return PatchOp(
        resource=NODE_IMAGES, name=ni.metadata.name, patch_type="merge", patch=body, subresource="status"
    )


def node_image_create(node: Node) -> CreateOp:
    body: JsonObject = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "NodeImage",
        "metadata": {"name": node.metadata.name, "labels": dict(node.metadata.labels)},
        "spec": {},
    }
    return CreateOp(resource=NODE_IMAGES, body=body)


def node_image_delete(ni: NodeImage) -> DeleteOp:
    return DeleteOp(resource=NODE_IMAGES, name=ni.metadata.name, uid=ni.metadata.uid)


def job_finalizers_patch(job: ImagePullJob, finalizers: list[str]) -> PatchOp:
    ops: list[JsonObject] = []
    if job.metadata.uid:
        ops.append({"op": "test", "path": "/metadata/uid", "value": job.metadata.uid})
    ops.append({"op": "add", "path": "/metadata/finalizers", "value": finalizers})
    return PatchOp(
        resource=IMAGE_PULL_JOBS,
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        patch_type="json",
        patch=ops,
    )


def job_delete(job: ImagePullJob) -> DeleteOp:
    return DeleteOp(
        resource=IMAGE_PULL_JOBS,
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        uid=job.metadata.uid,
    )


def job_create(body: JsonObject, namespace: str) -> CreateOp:
    return CreateOp(resource=IMAGE_PULL_JOBS, namespace=namespace, body=body)
