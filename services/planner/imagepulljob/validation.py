"""ImagePullJob admission rules (`pkg/webhook/imagepulljob/validating/imagepulljob_create_update_handler.go`),
one implementation for the webhook and the planner.

Kruise answers with the *first* violation, as a plain message that names the field
("parallelism does not support percentage value"); the webhook returns it with Kruise's HTTP code, and
the planner, for a job that got in while the webhook was down, reports the same text instead of acting
on the job. `JobError.field` is the field path for the rollout log's `field`.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from schemas.constants import (
    COMPLETION_ALWAYS,
    COMPLETION_NEVER,
    DEFAULT_PULL_TIMEOUT_SECONDS,
    MAX_IMAGES_PER_NODE_IMAGE,
    MAX_INT32,
)
from schemas.imagepulljob import ImagePullJob
from schemas.nodeimage import NodeImage
from services.planner.imagepulljob import imageref
from services.planner.kit.gates import FeatureGates
from services.planner.kit.selectors import conversion_error

_GO_INT: Final = re.compile(r"[+-]?[0-9]+")


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """One rejection: Kruise's message, the field it is about, and the HTTP code the webhook answers."""

    field: str
    message: str
    code: int = 400

    def __str__(self) -> str:
        return self.message


def gate_error(gates: FeatureGates) -> JobError | None:
    """Kruise's webhook refuses every job (403) unless KruiseDaemon and ImagePullJobGate are on."""
    for name, on in (("KruiseDaemon", gates.kruise_daemon), ("ImagePullJobGate", gates.image_pull_job_gate)):
        if not on:
            return JobError(field="", message=f"feature-gate {name} is not enabled", code=403)
    return None


def parallelism_error(value: Any) -> str | None:
    """Only a non-negative integer (or a string holding one) is a parallelism."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.endswith("%"):
            return "parallelism does not support percentage value"
        if not _GO_INT.fullmatch(value):
            return f'parallelism must be a valid integer: strconv.ParseInt: parsing "{value}": invalid syntax'
        if not -(2**31) <= int(value) <= MAX_INT32:
            return f'parallelism must be a valid integer: strconv.ParseInt: parsing "{value}": value out of range'
        return "parallelism must be non-negative" if int(value) < 0 else None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"parallelism must be a valid integer: {value!r} is neither an integer nor a string"
    return "parallelism must be non-negative" if value < 0 else None


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def validate_image_pull_job(job: ImagePullJob, old: ImagePullJob | None = None) -> JobError | None:
    """Kruise's rules in Kruise's order; the first violation, or None. `old`: the object an UPDATE replaces."""
    spec = job.spec
    if old is not None and (spec.pull_secrets or []) != (old.spec.pull_secrets or []):
        return JobError(field="spec.pullSecrets", message="spec.pullSecrets is immutable", code=403)
    sel = spec.selector
    if sel is not None:
        if sel.has_label_selector():
            if sel.names is not None:
                return JobError(
                    field="spec.selector",
                    message="can not set both names and labelSelector in this spec.selector",
                )
            problem = conversion_error(sel.label_selector())
            if problem:
                return JobError(field="spec.selector", message=f"invalid selector: {problem}")
        if sel.names is not None and len(set(sel.names)) != len(sel.names):
            return JobError(field="spec.selector.names", message="duplicated name in selector names")
    if spec.pod_selector is not None:
        if sel is not None:
            return JobError(field="spec.podSelector", message="can not set both selector and podSelector")
        problem = conversion_error(spec.pod_selector.label_selector())
        if problem:
            return JobError(field="spec.podSelector", message=f"invalid podSelector: {problem}")
    if not spec.image:
        return JobError(field="spec.image", message="image can not be empty")
    problem = imageref.validate(spec.image)
    if problem:
        return JobError(field="spec.image", message=f"invalid image {spec.image}: {problem}")
    problem = parallelism_error(spec.parallelism)
    if problem:
        return JobError(field="spec.parallelism", message=problem)
    timeout = DEFAULT_PULL_TIMEOUT_SECONDS
    if spec.pull_policy is not None and spec.pull_policy.timeout_seconds is not None:
        timeout = _int_or(spec.pull_policy.timeout_seconds, DEFAULT_PULL_TIMEOUT_SECONDS)
    cp = spec.completion_policy
    if cp.type == COMPLETION_ALWAYS:
        deadline = cp.active_deadline_seconds
        if deadline is not None and timeout > _int_or(deadline, 0):
            return JobError(
                field="spec.completionPolicy.activeDeadlineSeconds",
                message="completionPolicy.activeDeadlineSeconds must be greater than "
                "pullPolicy.timeoutSeconds(default 600)",
            )
    elif cp.type == COMPLETION_NEVER:
        if cp.active_deadline_seconds is not None or cp.ttl_seconds_after_finished is not None:
            return JobError(
                field="spec.completionPolicy",
                message="activeDeadlineSeconds and ttlSecondsAfterFinished can only work with "
                "Always CompletionPolicyType",
            )
    else:
        return JobError(
            field="spec.completionPolicy.type", message=f"unknown type of completionPolicy: {cp.type}"
        )
    return None


def parallelism_of(job: ImagePullJob) -> int:
    """The controller's reading (`IntOrString.IntValue`): default 1, a string is Atoi-parsed and an
    unparsable one ("50%") means 0."""
    value = job.spec.parallelism
    if value is None:
        return 1
    if isinstance(value, str):
        return int(value) if _GO_INT.fullmatch(value) else 0
    return _int_or(value, 0)


def validate_node_image(ni: NodeImage) -> str | None:
    """Kruise's NodeImage rules (`pkg/webhook/nodeimage/validating`): at most 256 images, named, tags named
    and unique, each with createdAt, a non-negative version and a pullPolicy with ttlSecondsAfterFinished."""
    images = ni.spec.images
    if len(images) > MAX_IMAGES_PER_NODE_IMAGE:
        return f"spec images length {len(images)} can not be more than {MAX_IMAGES_PER_NODE_IMAGE}"
    for name, spec in images.items():
        if not name:
            return "image name can not be empty"
        seen: set[str] = set()
        for t in spec.tags:
            if not t.tag:
                return f"tag for image {name} can not be empty"
            if t.tag in seen:
                return f"duplicated tag {t.tag} for image {name}"
            seen.add(t.tag)
            full = f"{name}/{t.tag}"
            if t.created_at is None:
                return f"createAt field for {full} can not be empty"
            if t.version < 0:
                return f"version for {full} can not be less than 0"
            if t.pull_policy is None:
                return f"pullPolicy field for {full} must set"
            if t.pull_policy.ttl_seconds_after_finished is None:
                return f"pullPolicy.ttlSecondsAfterFinished for {full} must set"
    return None


__all__ = [
    "JobError",
    "gate_error",
    "parallelism_error",
    "parallelism_of",
    "validate_image_pull_job",
    "validate_node_image",
]
