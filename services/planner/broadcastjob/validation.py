"""BroadcastJob admission rules and defaults (`pkg/webhook/broadcastjob/{mutating,validating}/`), one implementation.

The webhook denies with these errors; the planner applies the same rules before acting (an object
admitted while the webhook was down is reported, never run) and reads the spec through
:func:`defaulted`, so a BroadcastJob written without the webhook behaves as one that went through it:
parallelism MaxInt32, completionPolicy `Always`, failurePolicy `FailFast`.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from schemas.broadcastjob import BroadcastJob, BroadcastJobSpec
from schemas.constants import (
    BCJ_NAME_MAX,
    COMPLETION_ALWAYS,
    COMPLETION_NEVER,
    FAILURE_CONTINUE,
    FAILURE_FAIL_FAST,
    FAILURE_PAUSE,
    LABEL_BROADCASTJOB_CONTROLLER_UID,
    LABEL_BROADCASTJOB_NAME,
    MAX_INT32,
)
from services.planner.kit.fielderrors import FieldError, go_value
from services.planner.kit.intstr import IntOrPercentError, validate_int_or_percent
from services.planner.kit.podvalidation import pod_template_errors
from services.planner.kit.selectors import max_len_error, regex_error

__all__ = ["defaulted", "validate_broadcastjob"]

_NAME_FMT: Final = r"^[a-zA-Z0-9\-]+$"
_NAME_RE: Final = re.compile(r"[a-zA-Z0-9\-]+")
_NAME_MSG: Final = "BroadcastJob name must consist of alphanumeric characters or '-'"


def _err(field: str, type_: str, value: object = None, detail: str = "", *, no_value: bool = False) -> FieldError:
    return FieldError(field=field, type=type_, value="" if no_value else go_value(value), detail=detail)


def defaulted(spec: BroadcastJobSpec) -> BroadcastJobSpec:
    """Kruise's `SetDefaultsBroadcastJob` for the fields the controller reads."""
    completion = spec.completion_policy
    failure = spec.failure_policy
    return msgspec.structs.replace(
        spec,
        parallelism=MAX_INT32 if spec.parallelism is None else spec.parallelism,
        completion_policy=completion if completion.type else msgspec.structs.replace(completion, type=COMPLETION_ALWAYS),
        failure_policy=failure if failure.type else msgspec.structs.replace(failure, type=FAILURE_FAIL_FAST),
    )


def validate_broadcastjob(job: BroadcastJob) -> list[FieldError]:
    errs: list[FieldError] = []
    name = job.metadata.name
    if not name:
        errs.append(_err("metadata.name", "Required", detail="name or generateName is required", no_value=True))
    else:
        if not _NAME_RE.fullmatch(name):
            errs.append(_err("metadata.name", "Invalid", name, regex_error(_NAME_MSG, _NAME_FMT, "example-com")))
        if len(name) > BCJ_NAME_MAX:
            errs.append(_err("metadata.name", "Invalid", name, max_len_error(BCJ_NAME_MAX)))
    spec = defaulted(job.spec)
    try:
        if validate_int_or_percent(spec.parallelism, 1, True) < 0:
            errs.append(_err("spec.parallelism", "Invalid", spec.parallelism, "must be greater than or equal to 0"))
    except IntOrPercentError as e:
        errs.append(_err("spec.parallelism", "Invalid", spec.parallelism, str(e)))
    restart = spec.template.spec.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        errs.append(_err("spec.template.spec.restartPolicy", "Invalid", restart or "",
                         "pod restartPolicy can only be Never or OnFailure"))
    for key in (LABEL_BROADCASTJOB_NAME, LABEL_BROADCASTJOB_CONTROLLER_UID):
        if key in spec.template.metadata.labels:
            errs.append(_err("spec.template.metadata.labels", "Invalid", spec.template.metadata.labels,
                             f"{key} label is set by the BroadcastJob controller and must not be preset"))
    cp = spec.completion_policy
    if cp.type not in (COMPLETION_ALWAYS, COMPLETION_NEVER):
        errs.append(_err("spec.completionPolicy.type", "NotSupported", cp.type,
                         f'supported values: "{COMPLETION_ALWAYS}", "{COMPLETION_NEVER}"'))
    if cp.type == COMPLETION_NEVER:
        if cp.ttl_seconds_after_finished is not None:
            errs.append(_err("spec.completionPolicy.ttlSecondsAfterFinished", "Invalid", cp.ttl_seconds_after_finished,
                             "ttlSecondsAfterFinished can only work with Always CompletionPolicyType"))
        if cp.active_deadline_seconds is not None:
            errs.append(_err("spec.completionPolicy.activeDeadlineSeconds", "Invalid", cp.active_deadline_seconds,
                             "activeDeadlineSeconds can only work with Always CompletionPolicyType"))
    if spec.failure_policy.type not in (FAILURE_FAIL_FAST, FAILURE_CONTINUE, FAILURE_PAUSE):
        errs.append(_err("spec.failurePolicy.type", "NotSupported", spec.failure_policy.type,
                         f'supported values: "{FAILURE_FAIL_FAST}", "{FAILURE_CONTINUE}", "{FAILURE_PAUSE}"'))
    errs.extend(pod_template_errors(spec.template, "spec.template", restart_policies=None))
    return errs
