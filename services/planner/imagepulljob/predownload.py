"""CloneSet image pre-download (`pkg/controller/cloneset/cloneset_controller.go` + `cloneset_predownload_image.go`,
`pkg/util/imagejob/utilfunction`), behind the `PreDownloadImageForInPlaceUpdate` gate (off by default).

While a rollout is under way (current revision != update revision) and at least
`apps.kruise.io/image-predownload-min-updated-ready-pods` pods of the new revision are ready, the CloneSet
creates one ImagePullJob per container whose image changed, aimed at the nodes of the pods not yet
updated, and labels the update revision so it never does it twice. A revision is labelled "ignored"
instead (and no job made) for ReCreate, for replicas <= 3, for a rollout done in one batch
(partition 0 and maxUnavailable, rounded down, >= replicas) and for a change that cannot be made in
place. Once the revisions are consistent again, every job the CloneSet controls is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.cloneset import CloneSet
from schemas.constants import (
    ANNOTATION_PREDOWNLOAD_MIN_UPDATED_READY,
    ANNOTATION_PREDOWNLOAD_PARALLELISM,
    ANNOTATION_PREDOWNLOAD_TIMEOUT,
    API_VERSION,
    COMPLETION_ALWAYS,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PULL_PARALLELISM,
    EVENT_CREATED_IMAGE_PULL_JOB,
    EVENT_FAILED_CREATE_IMAGE_PULL_JOB,
    KIND_CLONESET,
    KIND_IMAGE_PULL_JOB,
    LABEL_HASH,
    LABEL_PREDOWNLOAD_CREATED,
    LABEL_PREDOWNLOAD_IGNORED,
    LABEL_REVISION_HASH,
    MAX_INT32,
    PREDOWNLOAD_BACKOFF_LIMIT,
    PREDOWNLOAD_MIN_REPLICAS,
    PREDOWNLOAD_TIMEOUT_SECONDS,
    PREDOWNLOAD_TTL_SECONDS,
    STRATEGY_RECREATE,
)
from schemas.daemonset import DaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.kinds import CLONESET
from schemas.kube import ControllerRevision, JsonObject, LabelSelector, PodTemplateSpec
from schemas.messages import VERB_JOB_CREATE, VERB_JOB_DELETE, VERB_REVISION_LABEL, Command, RolloutEvent
from services.planner.imagepulljob import ops
from services.planner.kit.builder import Builder, kube_event
from services.planner.kit.gates import FeatureGates
from services.planner.kit.intstr import IntOrPercentError, partition_replicas, scaled_or_zero
from services.planner.kit.podpatch import escape

_GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass
class PreDownload:
    """The pre-download part of one CloneSet pass."""

    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    jobs: list[JsonObject] = field(default_factory=list)  # the ImagePullJobs this pass creates
    skipped: str = ""  # why the revision was labelled ignored ("" = not ignored)


def enabled(gates: FeatureGates) -> bool:
    return gates.kruise_daemon and gates.pre_download_image_for_in_place_update


def _int32(text: str | None) -> int | None:
    if text is None or not _GO_INT.fullmatch(text) or not -(2**31) <= int(text) <= MAX_INT32:
        return None
    return int(text)


def parallelism_setting(cs: CloneSet) -> int | str:
    """The annotation as an int-or-string (`intstr.Parse`: "5" -> 5, "50%" stays a string); default 1."""
    text = cs.metadata.annotations.get(ANNOTATION_PREDOWNLOAD_PARALLELISM)
    if text is None:
        return DEFAULT_PULL_PARALLELISM
    value = _int32(text)
    return value if value is not None else text


def timeout_setting(workload: CloneSet | DaemonSet) -> int:
    """The pull timeout annotation as an int32; unset or unparsable: 300."""
    value = _int32(workload.metadata.annotations.get(ANNOTATION_PREDOWNLOAD_TIMEOUT))
    return value if value is not None else PREDOWNLOAD_TIMEOUT_SECONDS


def min_updated_ready(cs: CloneSet) -> int:
    value = _int32(cs.metadata.annotations.get(ANNOTATION_PREDOWNLOAD_MIN_UPDATED_READY))
    return value if value is not None else 0


def changed_images(current: PodTemplateSpec | None, update: PodTemplateSpec | None) -> dict[str, str]:
    """`diffImagesBetweenRevisions`: container -> new image, for changed or new containers."""
    if current is None or update is None:
        return {}
    old = {c.name: c.image for c in current.containers()}
    return {c.name: c.image for c in update.containers() if old.get(c.name) != c.image}


def skip_reason(cs: CloneSet, in_place_possible: bool) -> str:
    """Why Kruise labels the update revision `image-predownload-ignored` ("" = create jobs)."""
    strategy = cs.spec.update_strategy
    replicas = int(cs.spec.replicas) if isinstance(cs.spec.replicas, int) else 1
    if (strategy.type or STRATEGY_RECREATE) == STRATEGY_RECREATE:
        return "update type is ReCreate"
    if replicas <= PREDOWNLOAD_MIN_REPLICAS:
        return f"replicas {replicas} <= {PREDOWNLOAD_MIN_REPLICAS}"
    try:
        partition = partition_replicas(strategy.partition, replicas)
    except IntOrPercentError:
        partition = 0
    max_unavailable = scaled_or_zero(
        strategy.max_unavailable if strategy.max_unavailable is not None else DEFAULT_MAX_UNAVAILABLE,
        replicas,
        False,
    )
    if partition == 0 and max_unavailable >= replicas:
        return "all pods update in one batch"
    if not in_place_possible:
        return "in-place update is not possible"
    return ""


def job_name(update: ControllerRevision, container: str) -> str:
    return f"{update.metadata.name}-{container}"


def job_body(
    cs: CloneSet, update: ControllerRevision, template: PodTemplateSpec, container: str, image: str
) -> JsonObject:
    """The ImagePullJob Kruise creates for one container (`CreateJobForWorkloadWithStrategy`)."""
    owner = {"apiVersion": API_VERSION, "kind": KIND_CLONESET, "name": cs.metadata.name, "uid": cs.metadata.uid,
             "controller": True, "blockOwnerDeletion": True}
    revision_hash = update.metadata.labels.get(LABEL_HASH, "")
    return workload_job_body(owner, cs.metadata.namespace, cs.spec.selector, update, template, container, image,
                             parallelism=parallelism_setting(cs), timeout=timeout_setting(cs),
                             not_in=[update.metadata.name, revision_hash])


def workload_job_body(
    owner: JsonObject, namespace: str, selector: LabelSelector | None, update: ControllerRevision,
    template: PodTemplateSpec, container: str, image: str, *, parallelism: int | str, timeout: int, not_in: list[str],
) -> JsonObject:
    """A workload's pre-download ImagePullJob for one container: named `<revision>-<container>`, labelled
    with the template labels and the revision's `controller.kubernetes.io/hash`, aimed at the workload's
    pods whose `controller-revision-hash` is none of `not_in`, controlled by `owner`."""
    revision_hash = update.metadata.labels.get(LABEL_HASH, "")
    labels = {**template.metadata.labels, LABEL_HASH: revision_hash}
    match_labels = dict(selector.match_labels) if selector is not None else {}
    expressions: list[dict[str, Any]] = [
        {"key": e.key, "operator": e.operator, **({"values": list(e.values)} if e.values else {})}
        for e in (selector.match_expressions if selector is not None else [])
    ]
    expressions.append({"key": LABEL_REVISION_HASH, "operator": "NotIn", "values": not_in})
    pod_selector: JsonObject = {"matchExpressions": expressions}
    if match_labels:
        pod_selector["matchLabels"] = match_labels
    secrets = [
        str(s.get("name", "")) for s in template.spec.get("imagePullSecrets") or [] if isinstance(s, dict)
    ]
    spec: JsonObject = {
        "image": image,
        "podSelector": pod_selector,
        "parallelism": parallelism,
        "pullPolicy": {"backoffLimit": PREDOWNLOAD_BACKOFF_LIMIT, "timeoutSeconds": timeout},
        "completionPolicy": {"type": COMPLETION_ALWAYS, "ttlSecondsAfterFinished": PREDOWNLOAD_TTL_SECONDS},
        "sandboxConfig": {"labels": labels, "annotations": dict(template.metadata.annotations)},
    }
    if secrets:
        spec["pullSecrets"] = secrets
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_IMAGE_PULL_JOB,
        "metadata": {"name": job_name(update, container), "namespace": namespace, "labels": labels,
                     "ownerReferences": [owner]},
        "spec": spec,
    }


def label_revision(b: Builder, rev: ControllerRevision, key: str) -> None:
    patch: list[JsonObject] = []
    if rev.metadata.uid:
        patch.append({"op": "test", "path": "/metadata/uid", "value": rev.metadata.uid})
    if rev.metadata.labels:
        patch.append({"op": "add", "path": f"/metadata/labels/{escape(key)}", "value": "true"})
    else:
        patch.append({"op": "add", "path": "/metadata/labels", "value": {key: "true"}})
    b.command(
        f"{b.uid}/revision-label/{rev.metadata.name}/{key}",
        VERB_REVISION_LABEL,
        [b.revision_patch(rev.metadata.name, patch)],
        revision=rev.metadata.name,
    )


def predownload_commands(
    cloneset: CloneSet,
    current: ControllerRevision,
    update: ControllerRevision,
    templates: tuple[PodTemplateSpec | None, PodTemplateSpec | None],
    existing_jobs: Sequence[ImagePullJob],
    gates: FeatureGates,
    now: datetime,
    *,
    in_place_possible: bool,
) -> PreDownload:
    """The pre-download decisions of one CloneSet pass.

    `current`/`update`: the pass's revisions (both stored); `templates`: their pod templates;
    `existing_jobs`: the ImagePullJobs whose controller is this CloneSet; `in_place_possible`: whether
    the change from current to update can be made in place (`CanUpdateInPlace`).
    """
    out = PreDownload()
    if not enabled(gates):
        return out
    b = Builder.of(CLONESET, cloneset, now)
    if current.metadata.name == update.metadata.name:
        for job in existing_jobs:
            ref = job.metadata.controller_ref()
            if ref is None or ref.uid != cloneset.metadata.uid or job.metadata.deletion_timestamp is not None:
                continue
            b.command(
                f"{b.uid}/imagepulljob-delete/{job.metadata.uid}", VERB_JOB_DELETE, [ops.job_delete(job)]
            )
            b.event(
                "imagepulljob-deleted", f"deleted ImagePullJob {job.metadata.name}: revisions are consistent"
            )
        out.commands, out.events = b.commands, b.events
        return out
    updated_ready = cloneset.status.updated_ready_replicas
    if update.metadata.name != cloneset.status.update_revision:
        updated_ready = 0
    if min_updated_ready(cloneset) > updated_ready:
        return out
    labels = update.metadata.labels
    if LABEL_PREDOWNLOAD_CREATED in labels or LABEL_PREDOWNLOAD_IGNORED in labels:
        return out
    reason = skip_reason(cloneset, in_place_possible)
    if reason:
        out.skipped = reason
        label_revision(b, update, LABEL_PREDOWNLOAD_IGNORED)
        b.event(
            "predownload-ignored",
            f"no image pre-download for revision {update.metadata.name}: {reason}",
            revision=update.metadata.name,
        )
        out.commands, out.events = b.commands, b.events
        return out
    template = templates[1]
    for container, image in sorted(changed_images(templates[0], template).items()):
        assert template is not None
        body = job_body(cloneset, update, template, container, image)
        name = body["metadata"]["name"]
        out.jobs.append(body)
        b.command(
            f"{b.uid}/imagepulljob-create/{name}",
            VERB_JOB_CREATE,
            [ops.job_create(body, cloneset.metadata.namespace)],
            revision=update.metadata.name,
            on_success=kube_event(
                EVENT_CREATED_IMAGE_PULL_JOB, f"created ImagePullJob {name} for image: {image}"
            ),
            on_failure=kube_event(
                EVENT_FAILED_CREATE_IMAGE_PULL_JOB, f"failed to create ImagePullJob {name}"
            ),
        )
        b.event(
            "imagepulljob-created",
            f"created ImagePullJob {name} for image: {image}",
            revision=update.metadata.name,
        )
    label_revision(b, update, LABEL_PREDOWNLOAD_CREATED)
    out.commands, out.events = b.commands, b.events
    return out


__all__ = [
    "PreDownload",
    "changed_images",
    "enabled",
    "job_body",
    "job_name",
    "label_revision",
    "workload_job_body",
    "min_updated_ready",
    "parallelism_setting",
    "predownload_commands",
    "skip_reason",
    "timeout_setting",
]
