"""The NodeImage tag entry a job writes (`pkg/controller/imagepulljob` syncNodeImages, getImagePullPolicy,
getTTLSecondsForAlways/Never, getOwnerRef).

Kruise adds a random jitter to each tag's TTL so that tags written together do not expire together;
the planner reads no random source, so the jitter is a hash of (job uid, node): as spread, and the same
on every re-plan (a re-sent write is byte-identical and deduplicated).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from schemas.constants import (
    ACTIVE_DEADLINE_SECONDS_FOR_NEVER,
    API_VERSION,
    COMPLETION_NEVER,
    DEFAULT_PULL_BACKOFF_LIMIT,
    DEFAULT_PULL_TIMEOUT_SECONDS,
    DEFAULT_TTL_SECONDS_FOR_ALWAYS_NODE_IMAGE,
    KIND_IMAGE_PULL_JOB,
    TTL_JITTER_SECONDS_FOR_ALWAYS,
    TTL_JITTER_SECONDS_FOR_NEVER,
    TTL_SECONDS_FOR_NEVER,
)
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ObjectReference
from schemas.nodeimage import ImageSpec, ImageTagPullPolicy, ImageTagSpec, NodeImage, ReferenceObject
from services.planner.kit.timeutil import format_time


def jitter(job: ImagePullJob, node: str, span: int) -> int:
    """A stable stand-in for `rand.Int31n(span)`."""
    digest = hashlib.sha256(f"{job.metadata.uid}/{node}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % span


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timeout_of(job: ImagePullJob) -> int | None:
    return _int(job.spec.pull_policy.timeout_seconds) if job.spec.pull_policy is not None else None


def backoff_of(job: ImagePullJob) -> int | None:
    return _int(job.spec.pull_policy.backoff_limit) if job.spec.pull_policy is not None else None


def owner_ref(job: ImagePullJob) -> ObjectReference:
    return ObjectReference(
        api_version=API_VERSION,
        kind=KIND_IMAGE_PULL_JOB,
        name=job.metadata.name,
        namespace=job.metadata.namespace,
        uid=job.metadata.uid,
    )


def tag_pull_policy(job: ImagePullJob, node: str) -> ImageTagPullPolicy:
    """Timeout and backoff as the job says; TTL and deadline by completion policy."""
    cp = job.spec.completion_policy
    timeout, backoff = timeout_of(job), backoff_of(job)
    if cp.type == COMPLETION_NEVER:
        ttl = (
            TTL_SECONDS_FOR_NEVER
            + jitter(job, node, 2 * TTL_JITTER_SECONDS_FOR_NEVER)
            - TTL_JITTER_SECONDS_FOR_NEVER
        )
        deadline = (
            max(timeout, ACTIVE_DEADLINE_SECONDS_FOR_NEVER)
            if timeout is not None
            else ACTIVE_DEADLINE_SECONDS_FOR_NEVER
        )
        return ImageTagPullPolicy(
            timeout_seconds=timeout,
            backoff_limit=backoff,
            ttl_seconds_after_finished=ttl,
            active_deadline_seconds=deadline,
        )
    job_ttl, job_deadline = _int(cp.ttl_seconds_after_finished), _int(cp.active_deadline_seconds)
    if job_ttl is not None:
        base = job_ttl
    elif job_deadline is not None:
        base = job_deadline
    else:
        base = (timeout if timeout is not None else DEFAULT_PULL_TIMEOUT_SECONDS) * (
            backoff if backoff is not None else DEFAULT_PULL_BACKOFF_LIMIT
        )
    ttl = base + DEFAULT_TTL_SECONDS_FOR_ALWAYS_NODE_IMAGE + jitter(job, node, TTL_JITTER_SECONDS_FOR_ALWAYS)
    return ImageTagPullPolicy(
        timeout_seconds=timeout,
        backoff_limit=backoff,
        ttl_seconds_after_finished=ttl,
        active_deadline_seconds=job_deadline,
    )


def secret_refs(job: ImagePullJob) -> list[ReferenceObject]:
    """The job's pull secrets as NodeImage references. Kruise copies each secret into
    `kruise-daemon-config` because its daemon may not read other namespaces; kruisebus's node agent is
    handed the job's own `<namespace>/<name>` and resolves it itself."""
    return [ReferenceObject(namespace=job.metadata.namespace, name=n) for n in job.spec.pull_secrets or []]


def has_secret(spec: ImageSpec, ref: ReferenceObject) -> bool:
    return any(s.namespace == ref.namespace and s.name == ref.name for s in spec.pull_secrets)


def owned_tag_version(ni: NodeImage, job: ImagePullJob, image: str, tag: str) -> int:
    """The version of the job's tag on this NodeImage, -1 when the tag is not owned by the job (by uid)."""
    spec = ni.tag_spec(image, tag)
    if spec is None or not any(r.uid == job.metadata.uid for r in spec.owner_references):
        return -1
    return spec.version


def synced_image_spec(
    ni: NodeImage, job: ImagePullJob, image: str, tag: str, now: datetime
) -> ImageSpec | None:
    """The image entry after the job has added itself to `ni`, or None when there is nothing to write."""
    current = ni.spec.images.get(image) or ImageSpec()
    secrets = list(current.pull_secrets)
    for ref in secret_refs(job):
        if not has_secret(current, ref):
            secrets.append(ref)
    mine = owner_ref(job)
    stamp = format_time(now)
    tags: list[ImageTagSpec] = []
    found = False
    changed = len(secrets) != len(current.pull_secrets) or current.sandbox_config != job.spec.sandbox_config
    for t in current.tags:
        if t.tag != tag or found:
            tags.append(t)
            continue
        found = True
        if any(r.uid == mine.uid for r in t.owner_references):
            tags.append(t)  # already ours: only secrets may have been missing
            continue
        changed = True
        tags.append(
            ImageTagSpec(
                tag=t.tag,
                created_at=stamp,
                pull_policy=t.pull_policy,
                owner_references=[*t.owner_references, mine],
                version=t.version + 1,
                image_pull_policy=job.spec.image_pull_policy,
            )
        )
    if not found:
        changed = True
        status = ni.tag_status(image, tag)
        tags.append(
            ImageTagSpec(
                tag=tag,
                created_at=stamp,
                pull_policy=tag_pull_policy(job, ni.metadata.name),
                owner_references=[mine],
                version=status.version + 1 if status is not None else 0,
                image_pull_policy=job.spec.image_pull_policy,
            )
        )
    if not changed:
        return None
    tags.sort(key=lambda t: t.tag)
    return ImageSpec(tags=tags, pull_secrets=secrets, sandbox_config=job.spec.sandbox_config)


__all__ = [
    "backoff_of",
    "has_secret",
    "jitter",
    "owned_tag_version",
    "owner_ref",
    "secret_refs",
    "synced_image_spec",
    "tag_pull_policy",
    "timeout_of",
]
