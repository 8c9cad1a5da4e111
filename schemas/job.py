"""batch/v1 Job, the part kruisebus reads: the children an AdvancedCronJob with `jobTemplate` creates.

The AdvancedCronJob planner only needs to know whether a child Job is finished (a `Complete` or
`Failed` condition with status True), when it started and when it was scheduled (the
`apps.kruise.io/scheduled-at` annotation); the simulator's Job controller reads the spec's counts. The
pod template stays opaque (`JsonObject`), so nothing a user wrote is dropped when kruisebus copies it.
"""

from __future__ import annotations

import msgspec

from schemas.kube import LabelSelector, ObjectMeta, PodTemplateSpec, _K8s

JOB_API_VERSION = "batch/v1"


class JobSpec(_K8s):
    completions: int | None = None
    parallelism: int | None = None
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    suspend: bool | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)


class JobCondition(_K8s):
    """A Job's (and a BroadcastJob's) condition: type `Complete` or `Failed` (Kubernetes adds
    `Suspended`, `FailureTarget`, `SuccessCriteriaMet`)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_probe_time: str | None = None
    last_transition_time: str | None = None


class JobStatus(_K8s):
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    ready: int | None = None
    conditions: list[JobCondition] = []
    start_time: str | None = None
    completion_time: str | None = None


class Job(_K8s):
    metadata: ObjectMeta
    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)
    api_version: str = JOB_API_VERSION
    kind: str = "Job"
