"""Advanced DaemonSet image pre-download (`pkg/controller/daemonset/daemonset_predownload_image.go`), behind
`PreDownloadImageForDaemonSetUpdate` (off by default; it turns the ImagePullJob controller on).

While a rollout is under way (the status read at the start of the pass has updated != desired, or another
hash), the DaemonSet creates one ImagePullJob per container whose image differs from every old revision's,
named `<revision>-<container>`, and labels the revision `apps.kruise.io/pre-predownload-created` so it never
does it twice (also when a create failed, as Kruise). The jobs do not gate the rollout. A revision is labelled
`apps.kruise.io/image-predownload-ignored` instead when the whole rollout is one batch (partition 0 and
maxUnavailable >= desired). Once the status shows updated == desired on the current hash, every job the
DaemonSet controls is deleted. Parallelism is the `apps.kruise.io/image-predownload-parallelism` annotation
parsed as a base-10 integer ("50%" or garbage: 1), the pull timeout `...-timeout-seconds` (default 300).

One deliberate deviation: Kruise's job selector excludes `controller-revision-hash` values DaemonSet pods
never carry (the revision name and ""), so its jobs pull on the nodes of every DaemonSet pod; kruisebus
excludes the revision's short hash, the value the updated pods carry, so the jobs target the nodes of pods
not yet on the new revision, as Kruise's documentation promises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from schemas.constants import (
    ANNOTATION_PREDOWNLOAD_PARALLELISM,
    DEFAULT_PULL_PARALLELISM,
    DS_OWNER_API_VERSION,
    EVENT_CREATED_IMAGE_PULL_JOB,
    EVENT_FAILED_CREATE_IMAGE_PULL_JOB,
    KIND_DAEMONSET,
    LABEL_PREDOWNLOAD_CREATED,
    LABEL_PREDOWNLOAD_IGNORED,
)
from schemas.daemonset import DaemonSet, DaemonSetSpec
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision, JsonObject
from schemas.messages import VERB_JOB_CREATE, VERB_JOB_DELETE
from services.planner.imagepulljob import ops
from services.planner.imagepulljob.predownload import label_revision, timeout_setting, workload_job_body
from services.planner.kit.builder import Builder, kube_event
from services.planner.kit.gates import FeatureGates
from services.planner.kit.intstr import IntOrPercentError, scaled_int_percent
from services.planner.kit.revision import template_of

__all__ = ["changed_images", "enabled", "parallelism", "predownload"]

_BASE10: Final = re.compile(r"[+-]?[0-9]+")


def enabled(gates: FeatureGates) -> bool:
    return gates.kruise_daemon and gates.pre_download_image_for_daemon_set_update


def parallelism(ds: DaemonSet) -> int:
    """The annotation as a base-10 integer ("10" -> 10, "0" pauses the job); anything else, or none: 1."""
    text = ds.metadata.annotations.get(ANNOTATION_PREDOWNLOAD_PARALLELISM)
    if text is None or not _BASE10.fullmatch(text):
        return DEFAULT_PULL_PARALLELISM
    return int(text)


def changed_images(cur: ControllerRevision, old: Sequence[ControllerRevision]) -> dict[str, str]:
    """Containers of the current template whose image differs from the same-named container of any old
    revision, or whose name no old revision has (no old revision: every container). Unreadable data: none."""
    try:
        template = template_of(cur)
        olds = [{c.name: c.image for c in template_of(r).containers()} for r in old]
    except ValueError:
        return {}
    out: dict[str, str] = {}
    for c in template.containers():
        if not olds or any(o.get(c.name) != c.image for o in olds):
            out[c.name] = c.image
    return out


def _one_batch(spec: DaemonSetSpec, desired: int) -> bool:
    ru = spec.update_strategy.rolling_update
    try:
        partition = scaled_int_percent(ru.partition if ru else None, desired, False)
        unavailable = ru.max_unavailable if ru is not None and ru.max_unavailable is not None else 1
        max_unavailable = scaled_int_percent(unavailable, desired, True)
    except IntOrPercentError:
        return False
    return partition == 0 and max_unavailable >= desired


def predownload(b: Builder, ds: DaemonSet, spec: DaemonSetSpec, cur: ControllerRevision, hash_: str,
                old: Sequence[ControllerRevision], jobs: Sequence[ImagePullJob]) -> list[JsonObject]:
    """The pre-download commands of one pass (on `b`); returns the job bodies created."""
    status = ds.status
    if status.updated_number_scheduled == status.desired_number_scheduled and hash_ == status.daemon_set_hash:
        for job in jobs:
            ref = job.metadata.controller_ref()
            if ref is None or ref.uid != ds.metadata.uid or job.metadata.deletion_timestamp is not None:
                continue
            b.command(f"{b.uid}/imagepulljob-delete/{job.metadata.uid}", VERB_JOB_DELETE, [ops.job_delete(job)])
            b.event("imagepulljob-deleted", f"deleted ImagePullJob {job.metadata.name}: the rollout is done")
        return []
    labels = cur.metadata.labels
    if LABEL_PREDOWNLOAD_CREATED in labels or LABEL_PREDOWNLOAD_IGNORED in labels:
        return []
    if _one_batch(spec, status.desired_number_scheduled):
        label_revision(b, cur, LABEL_PREDOWNLOAD_IGNORED)
        b.event("predownload-ignored", f"no image pre-download for revision {cur.metadata.name}: all nodes update "
                "in one batch", revision=cur.metadata.name)
        return []
    owner: JsonObject = {"apiVersion": DS_OWNER_API_VERSION, "kind": KIND_DAEMONSET, "name": ds.metadata.name,
                         "uid": ds.metadata.uid, "controller": True, "blockOwnerDeletion": True}
    template = template_of(cur)
    bodies = []
    for container, image in sorted(changed_images(cur, old).items()):
        body = workload_job_body(owner, ds.metadata.namespace, ds.spec.selector, cur, template, container, image,
                                 parallelism=parallelism(ds), timeout=timeout_setting(ds),
                                 not_in=[cur.metadata.name, hash_])
        name = body["metadata"]["name"]
        bodies.append(body)
        b.command(f"{b.uid}/imagepulljob-create/{name}", VERB_JOB_CREATE, [ops.job_create(body, ds.metadata.namespace)],
                  revision=cur.metadata.name,
                  on_success=kube_event(EVENT_CREATED_IMAGE_PULL_JOB, f"created ImagePullJob {name} for image: {image}"),
                  on_failure=kube_event(EVENT_FAILED_CREATE_IMAGE_PULL_JOB, f"failed to create ImagePullJob {name}"))
        b.event("imagepulljob-created", f"created ImagePullJob {name} for image: {image}", revision=cur.metadata.name)
    label_revision(b, cur, LABEL_PREDOWNLOAD_CREATED)
    return bodies

