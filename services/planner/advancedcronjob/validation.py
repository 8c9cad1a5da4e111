"""AdvancedCronJob admission rules (`pkg/webhook/advancedcronjob/validating/advancedcronjob_create_update_handler.go`), one implementation.

The webhook (`services.webhook.admission`) denies with these errors at `kubectl apply`; the planner runs
the same rules before acting, so an object admitted while the webhook was down is reported (condition
`InvalidSpec`, a Warning Event, a `rejected` rollout event) instead of being scheduled. Paths and
messages are Kruise's, so `kubectl` shows what it would show on a cluster running OpenKruise.

CREATE checks metadata (name `^[a-zA-Z0-9\\-]+$`, at most 63 characters, namespace required), the
schedule (empty, unparsable, `TZ` together with `timeZone`), the template (exactly one kind; its pod
template as a core PodTemplateSpec), the non-negative counters and `timeZone` (empty, `Local`,
unknown). UPDATE adds "resourceVersion must be specified" and the immutability of everything except
schedule, timeZone, concurrencyPolicy, the history limits, startingDeadlineSeconds and paused.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from schemas.advancedcronjob import AdvancedCronJob, AdvancedCronJobSpec
from schemas.constants import ACJ_NAME_MAX
from schemas.kube import PodTemplateSpec
from services.planner.kit.cron import CronError, LocationError, ParserPanic, load_location, parse_standard
from services.planner.kit.fielderrors import FieldError, go_value
from services.planner.kit.podvalidation import pod_template_errors
from services.planner.kit.selectors import label_issues, max_len_error, regex_error

__all__ = ["validate_advancedcronjob"]

_NAME_FMT: Final = r"^[a-zA-Z0-9\-]+$"
_NAME_RE: Final = re.compile(r"[a-zA-Z0-9\-]+")
_NAME_MSG: Final = "AdvancedCronJob name must consist of alphanumeric characters or '-'"
_NO_TEMPLATE: Final = ("spec must have one template, either JobTemplate or BroadcastJobTemplate or "
                       "ImageListPullJobTemplate should be provided")
_TWO_TEMPLATES: Final = ("spec can have only one template, either JobTemplate or BroadcastJobTemplate or "
                         "ImageListPullJobTemplate should be provided")
_FORBIDDEN_UPDATE: Final = (
    "updates to advancedcronjob spec for fields other than 'imageListPullJobTemplate', 'schedule', "
    "'concurrencyPolicy', 'successfulJobsHistoryLimit', 'failedJobsHistoryLimit', "
    "'startingDeadlineSeconds', 'timeZone' and 'paused' are forbidden"
)
_MUTABLE: Final = ("schedule", "concurrency_policy", "successful_jobs_history_limit", "failed_jobs_history_limit",
                   "starting_deadline_seconds", "paused", "time_zone")


def _err(field: str, type_: str, value: object = None, detail: str = "", *, no_value: bool = False) -> FieldError:
    return FieldError(field=field, type=type_, value="" if no_value else go_value(value), detail=detail)


def _metadata(acj: AdvancedCronJob) -> list[FieldError]:
    meta = acj.metadata
    errs: list[FieldError] = []
    if not meta.name and not meta.generate_name:
        errs.append(_err("metadata.name", "Required", detail="name or generateName is required", no_value=True))
    elif meta.name:
        if not _NAME_RE.fullmatch(meta.name):
            errs.append(_err("metadata.name", "Invalid", meta.name, regex_error(_NAME_MSG, _NAME_FMT, "example-com")))
        if len(meta.name) > ACJ_NAME_MAX:
            errs.append(_err("metadata.name", "Invalid", meta.name, max_len_error(ACJ_NAME_MAX)))
    if not meta.namespace:
        errs.append(_err("metadata.namespace", "Required", no_value=True))
    errs.extend(_err(i.field, i.type, i.value, i.detail, no_value=i.type in ("Required", "Forbidden"))
                for i in label_issues(meta.labels, "metadata.labels"))
    return errs


def _schedule(spec: AdvancedCronJobSpec) -> list[FieldError]:
    path = "spec.schedule"
    errs: list[FieldError] = []
    if not spec.schedule:
        errs.append(_err(path, "Invalid", spec.schedule,
                         "schedule cannot be empty, please provide valid cron schedule."))
    try:
        parse_standard(spec.schedule)
    except ParserPanic as e:
        errs.append(_err(path, "Invalid", spec.schedule, f"invalid cron schedule: {e}"))
    except CronError as e:
        errs.append(_err(path, "Invalid", spec.schedule, str(e)))
    if "TZ" in spec.schedule and spec.time_zone is not None:
        errs.append(_err(path, "Invalid", spec.schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    return errs


def _time_zone(spec: AdvancedCronJobSpec) -> list[FieldError]:
    tz = spec.time_zone
    if tz is None:
        return []
    path = "spec.timeZone"
    if tz == "":
        return [_err(path, "Invalid", tz, "timeZone must be nil or non-empty string")]
    errs: list[FieldError] = []
    if tz.lower() == "local":
        errs.append(_err(path, "Invalid", tz, "timeZone must be an explicit time zone as defined in "
                                              "https://www.iana.org/time-zones"))
    try:
        load_location(tz)
    except LocationError as e:
        errs.append(_err(path, "Invalid", tz, str(e)))
    return errs


def _template(spec: AdvancedCronJobSpec) -> list[FieldError]:
    t = spec.template
    count = (t.job_template is not None) + (t.broadcast_job_template is not None)
    if count == 0:
        return [_err("spec.template", "Forbidden", detail=_NO_TEMPLATE, no_value=True)]
    if count > 1:
        return [_err("spec.template", "Forbidden", detail=_TWO_TEMPLATES, no_value=True)]
    if t.job_template is not None:
        raw = t.job_template.spec.get("template")
        try:
            pod = msgspec.convert(raw or {}, PodTemplateSpec)
        except msgspec.ValidationError as e:
            return [_err("spec.template", "Invalid", None, f"jobTemplate.spec.template: {e}")]
    else:
        assert t.broadcast_job_template is not None
        pod = t.broadcast_job_template.spec.template
    return pod_template_errors(pod, "spec.template")


def _nonnegative(spec: AdvancedCronJobSpec) -> list[FieldError]:
    errs: list[FieldError] = []
    for path, value in (("spec.startingDeadlineSeconds", spec.starting_deadline_seconds),
                        ("spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit),
                        ("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit)):
        if value is not None and value < 0:
            errs.append(_err(path, "Invalid", value, "must be greater than or equal to 0"))
    return errs


def _immutable(acj: AdvancedCronJob, old: AdvancedCronJob) -> list[FieldError]:
    """With every mutable field copied from the old object, the specs must be equal."""
    carried = msgspec.structs.replace(acj.spec, **{f: getattr(old.spec, f) for f in _MUTABLE})
    if msgspec.to_builtins(carried) != msgspec.to_builtins(old.spec):
        return [_err("spec", "Forbidden", detail=_FORBIDDEN_UPDATE, no_value=True)]
    return []


def validate_advancedcronjob(acj: AdvancedCronJob, old: AdvancedCronJob | None = None, *,
                             update: bool = False) -> list[FieldError]:
    """Every rule, in Kruise's order; `update` (with `old`) adds the UPDATE-only rules."""
    errs: list[FieldError] = []
    if update and not acj.metadata.resource_version:
        errs.append(_err("metadata.resourceVersion", "Invalid", "", "must be specified for an update"))
    if not update:
        errs.extend(_metadata(acj))
    spec = acj.spec
    errs.extend(_schedule(spec))
    errs.extend(_template(spec))
    errs.extend(_nonnegative(spec))
    errs.extend(_time_zone(spec))
    if old is not None:
        errs.extend(_immutable(acj, old))
    return errs
