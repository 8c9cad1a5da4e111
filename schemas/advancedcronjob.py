"""AdvancedCronJob `apps.kruise.io/v1alpha1` (`apis/apps/v1alpha1/advancedcronjob_types.go`): Jobs or BroadcastJobs on a schedule.

Json names and zero values as Kruise serves them. The Job template is kept opaque below its metadata
(the CRD declares it schemaless) so a child Job gets the user's spec unchanged. `status.conditions` is
kruisebus's own addition: Kruise's AdvancedCronJob has no conditions and stays silent where a schedule
stops (too many missed start times) or a deleted child is run again; kruisebus says so there.
"""

from __future__ import annotations

import msgspec

from schemas.broadcastjob import BroadcastJobSpec
from schemas.cloneset import CloneSetCondition
from schemas.constants import API_VERSION
from schemas.kube import JsonObject, ObjectMeta, ObjectReference, TemplateMeta, _K8s

Condition = CloneSetCondition
"""A workload condition (type, status, reason, message, transition and update times)."""


class JobTemplateSpec(_K8s):
    """batch/v1 JobTemplateSpec: the child's labels/annotations and its Job spec, copied as written."""

    metadata: TemplateMeta = msgspec.field(default_factory=TemplateMeta)
    spec: JsonObject = {}


class BroadcastJobTemplateSpec(_K8s):
    metadata: TemplateMeta = msgspec.field(default_factory=TemplateMeta)
    spec: BroadcastJobSpec = msgspec.field(default_factory=BroadcastJobSpec)


class CronJobTemplate(_K8s):
    job_template: JobTemplateSpec | None = None
    broadcast_job_template: BroadcastJobTemplateSpec | None = None


class AdvancedCronJobSpec(_K8s):
    schedule: str = ""
    time_zone: str | None = None
    starting_deadline_seconds: int | None = None
    concurrency_policy: str = ""  # Allow (default) | Forbid | Replace
    paused: bool | None = None
    successful_jobs_history_limit: int | None = None
    failed_jobs_history_limit: int | None = None
    template: CronJobTemplate = msgspec.field(default_factory=CronJobTemplate)


class AdvancedCronJobStatus(_K8s):
    type: str = ""  # Job | BroadcastJob
    active: list[ObjectReference] = []
    last_schedule_time: str | None = None
    conditions: list[Condition] = []  # kruisebus only (see the module docstring)


class AdvancedCronJob(_K8s):
    metadata: ObjectMeta
    spec: AdvancedCronJobSpec = msgspec.field(default_factory=AdvancedCronJobSpec)
    status: AdvancedCronJobStatus = msgspec.field(default_factory=AdvancedCronJobStatus)
    api_version: str = API_VERSION
    kind: str = "AdvancedCronJob"
