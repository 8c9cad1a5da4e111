"""Every label, annotation, condition, reason and default kruisebus shares with OpenKruise.

One source of truth: services, the simulator and the tests import these names instead of spelling the
strings again, so a typo cannot silently split one fact into two.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "apps.kruise.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
# OpenKruise's storage version; kruisebus serves it for DaemonSet and SidecarSet through its conversion webhook
API_VERSION_V1BETA1: Final = f"{GROUP}/v1beta1"

# Pod labels written by the CloneSet controller.
LABEL_REVISION_HASH: Final = "controller-revision-hash"
LABEL_POD_TEMPLATE_HASH: Final = "pod-template-hash"
LABEL_INSTANCE_ID: Final = "apps.kruise.io/cloneset-instance-id"
LABEL_SPECIFIED_DELETE: Final = "apps.kruise.io/specified-delete"
LABEL_LIFECYCLE_STATE: Final = "lifecycle.apps.kruise.io/state"
LABEL_EXCLUDE_PREPARING_DELETE: Final = "apps.kruise.io/cloneset-scaling-exclude-preparing-delete"
LABEL_HASH: Final = "controller.kubernetes.io/hash"  # on ControllerRevisions
# Workload label read by the validating webhook on DELETE (gate ResourcesDeletionProtection)
LABEL_DELETION_PROTECTION: Final = "policy.kruise.io/delete-protection"
DELETION_PROTECTION_ALWAYS: Final = "Always"
DELETION_PROTECTION_CASCADING: Final = "Cascading"

# Label on the short-lived pods the `kube` image runtime pulls with (services/runtime/kubepod.py), so a
# restarted node agent finds and deletes the ones it left behind.
LABEL_IMAGE_PULL_POD: Final = "kruisebus.io/image-pull"

# Pod annotations.
ANNOTATION_LIFECYCLE_TIMESTAMP: Final = "lifecycle.apps.kruise.io/timestamp"
ANNOTATION_INPLACE_STATE: Final = "apps.kruise.io/inplace-update-state"
ANNOTATION_INPLACE_STATE_LEGACY: Final = "inplace-update-state"
ANNOTATION_INPLACE_GRACE: Final = "apps.kruise.io/inplace-update-grace"
ANNOTATION_INPLACE_GRACE_LEGACY: Final = "inplace-update-grace"
ANNOTATION_DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
ANNOTATION_VCT_HASH: Final = "kruise.io/cloneset-volumeclaimtemplate-hash"  # on ControllerRevisions

# CloneSet annotations read for image pre-download (v1alpha1 form of the v1beta1 fields).
ANNOTATION_PREDOWNLOAD_PARALLELISM: Final = "apps.kruise.io/image-predownload-parallelism"
ANNOTATION_PREDOWNLOAD_TIMEOUT: Final = "apps.kruise.io/image-predownload-timeout-seconds"
ANNOTATION_PREDOWNLOAD_MIN_UPDATED_READY: Final = "apps.kruise.io/image-predownload-min-updated-ready-pods"

# Lifecycle states (label LABEL_LIFECYCLE_STATE).
STATE_PREPARING_NORMAL: Final = "PreparingNormal"
STATE_NORMAL: Final = "Normal"
STATE_PREPARING_UPDATE: Final = "PreparingUpdate"
STATE_UPDATING: Final = "Updating"
STATE_UPDATED: Final = "Updated"
STATE_PREPARING_DELETE: Final = "PreparingDelete"

# Pod conditions / readiness gates.
CONDITION_INPLACE_UPDATE_READY: Final = "InPlaceUpdateReady"
CONDITION_KRUISE_POD_READY: Final = "KruisePodReady"
CONDITION_READY: Final = "Ready"
CONDITION_CONTAINERS_READY: Final = "ContainersReady"
CONDITION_POD_SCHEDULED: Final = "PodScheduled"
CONDITION_INITIALIZED: Final = "Initialized"
REASON_START_INPLACE_UPDATE: Final = "StartInPlaceUpdate"
REASON_READINESS_GATES_NOT_READY: Final = "ReadinessGatesNotReady"

# CloneSet conditions.
CONDITION_FAILED_SCALE: Final = "FailedScale"
CONDITION_FAILED_UPDATE: Final = "FailedUpdate"
CONDITION_PROGRESSING: Final = "Progressing"
# kruisebus has no webhook: an invalid spec is reported with this condition (status True) instead.
CONDITION_INVALID_SPEC: Final = "InvalidSpec"

# Kubernetes Event reasons, as Kruise writes them.
EVENT_SUCCESSFUL_CREATE: Final = "SuccessfulCreate"
EVENT_FAILED_CREATE: Final = "FailedCreate"
EVENT_SUCCESSFUL_DELETE: Final = "SuccessfulDelete"
EVENT_FAILED_DELETE: Final = "FailedDelete"
EVENT_FAILED_UPDATE: Final = "FailedUpdate"  # a claim's owner could not be moved to its pod
EVENT_SCALE_UP_LIMITED: Final = "ScaleUpLimited"
EVENT_SUCCESSFUL_UPDATE_INPLACE: Final = "SuccessfulUpdatePodInPlace"
EVENT_FAILED_UPDATE_INPLACE: Final = "FailedUpdatePodInPlace"
EVENT_SUCCESSFUL_UPDATE_RECREATE: Final = "SuccessfulUpdatePodReCreate"
EVENT_FAILED_UPDATE_RECREATE: Final = "FailedUpdatePodReCreate"
EVENT_INVALID_SPEC: Final = "InvalidSpec"

# Defaults (Kruise's `apis/apps/defaults/v1alpha1.go` and controller constants).
DEFAULT_MAX_UNAVAILABLE: Final = "20%"
DEFAULT_REVISION_HISTORY_LIMIT: Final = 10
DEFAULT_REPLICAS: Final = 1
INSTANCE_ID_LENGTH: Final = 5
SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
EXPECTATION_TIMEOUT_SECONDS: Final = 300.0

# Update strategy types (v1alpha1).
STRATEGY_RECREATE: Final = "ReCreate"
STRATEGY_IN_PLACE_IF_POSSIBLE: Final = "InPlaceIfPossible"
STRATEGY_IN_PLACE_ONLY: Final = "InPlaceOnly"
UPDATE_STRATEGY_TYPES: Final = (STRATEGY_RECREATE, STRATEGY_IN_PLACE_IF_POSSIBLE, STRATEGY_IN_PLACE_ONLY)

# Who we are, in Events and field managers.
COMPONENT: Final = "kruisebus"

# Validation and revisions (`pkg/webhook/cloneset/validating`, `pkg/controller/cloneset/revision`).
STRATEGY_ON_DELETE: Final = "OnDelete"  # v1beta1 only; the v1alpha1 webhook rejects it
KIND_CLONESET: Final = "CloneSet"
CONTROLLER_REVISION_API_VERSION: Final = "apps/v1"
CONTROLLER_REVISION_KIND: Final = "ControllerRevision"
# Revision names keep at most this many characters of the CloneSet name (Kubernetes ControllerRevisionName).
REVISION_NAME_PREFIX_MAX: Final = 223

# CloneSet conditions, Event reasons and status (`pkg/controller/cloneset/cloneset_status.go`, `cloneset_event_handler.go`).
REASON_CLONESET_AVAILABLE: Final = "CloneSetAvailable"
REASON_CLONESET_PAUSED: Final = "CloneSetPaused"
REASON_PROGRESS_PARTITION_AVAILABLE: Final = "ProgressPartitionAvailable"
REASON_PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
REASON_CLONESET_UPDATED: Final = "CloneSetUpdated"
REASON_INVALID_SPEC: Final = "InvalidSpec"
MAX_INT32: Final = 2**31 - 1
ANNOTATION_RUNTIME_CONTAINERS_META: Final = "apps.kruise.io/runtime-containers-meta"  # written by kruise-daemon

# Image pre-download: ImagePullJob and NodeImage (`apis/apps/v1alpha1/imagepulljob_types.go`,
# `nodeimage_types.go`, `apis/apps/defaults/v1alpha1.go`, `pkg/controller/imagepulljob`, `pkg/controller/nodeimage`).
KIND_IMAGE_PULL_JOB: Final = "ImagePullJob"
KIND_NODE_IMAGE: Final = "NodeImage"
# ControllerRevision labels the CloneSet writes once it has decided about pre-download for a revision.
LABEL_PREDOWNLOAD_CREATED: Final = "apps.kruise.io/pre-predownload-created"
LABEL_PREDOWNLOAD_IGNORED: Final = "apps.kruise.io/image-predownload-ignored"
# A NodeImage with this label is kept when no Node of its name exists (tests).
LABEL_FAKE_NODE_IMAGE: Final = "apps.kruise.io/fake-nodeimage"
# Finalizer the ImagePullJob mutating webhook adds on create and the controller removes once finished.
FINALIZER_DELETION_PROTECTION: Final = "apps.kruise.io/deletion-protection"
# Annotations on pull secrets copied into the daemon's namespace.
ANNOTATION_PULL_SECRET_SOURCE: Final = "imagepulljobs.kruise.io/source-key"
ANNOTATION_PULL_SECRET_REFERENCES: Final = "imagepulljobs.kruise.io/references"
ANNOTATION_PULL_SECRET_MODE: Final = "imagepulljobs.kruise.io/mode"
KRUISE_DAEMON_CONFIG_NAMESPACE: Final = "kruise-daemon-config"
# completionPolicy.type
COMPLETION_ALWAYS: Final = "Always"
COMPLETION_NEVER: Final = "Never"
# imagePullPolicy
PULL_ALWAYS: Final = "Always"
PULL_IF_NOT_PRESENT: Final = "IfNotPresent"
# NodeImage tag phases
PHASE_WAITING: Final = "Waiting"
PHASE_PULLING: Final = "Pulling"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
# Defaults: the job's webhook (timeout 600, backoff 3), the controller (parallelism 1), the workloads'
# pre-download jobs (timeout 300, backoff 1, TTL 600) and the CloneSet's threshold (replicas > 3).
DEFAULT_PULL_TIMEOUT_SECONDS: Final = 600
DEFAULT_PULL_BACKOFF_LIMIT: Final = 3
DEFAULT_PULL_PARALLELISM: Final = 1
PREDOWNLOAD_TIMEOUT_SECONDS: Final = 300
PREDOWNLOAD_BACKOFF_LIMIT: Final = 1
PREDOWNLOAD_TTL_SECONDS: Final = 600
PREDOWNLOAD_MIN_REPLICAS: Final = 3  # pre-download only when replicas > this
# NodeImage tag TTLs the job writes: Always = (job TTL | activeDeadline | timeout x backoff) + this + jitter
DEFAULT_TTL_SECONDS_FOR_ALWAYS_NODE_IMAGE: Final = 300
TTL_JITTER_SECONDS_FOR_ALWAYS: Final = 300  # jitter in [0, 300)
TTL_SECONDS_FOR_NEVER: Final = 24 * 3600  # +- 600 s jitter
TTL_JITTER_SECONDS_FOR_NEVER: Final = 600
ACTIVE_DEADLINE_SECONDS_FOR_NEVER: Final = 1800
# The nodeimage controller: a tag without status for its version this long after createdAt failed.
NODE_IMAGE_RESPONSE_TIMEOUT_SECONDS: Final = 600
NODE_IMAGE_CREATION_DELAY_SECONDS: Final = 30  # after the Node turned Ready
PULL_RETRY_MAX_SECONDS: Final = 30  # kruise-daemon: 1 s between attempts, doubling, at most this
# kruisebus: how long a pull may wait on KB_NODE for its node's agent to start it. The pull command's
# `not_after` (a pull not started by then expires: the agent reports it failed, reason Expired), the
# planner's wait for the agent's first report before re-issuing it, and KB_NODE's max_age (a message
# that can no longer be started is dropped) all derive from this one value. Longer than a node's
# queue of pulls takes to drain (its agent pulls 2 at a time), shorter than the 600 s after which a
# tag nobody reported on fails with MESSAGE_NODE_NOT_RESPONDED.
PULL_START_DEADLINE_SECONDS: Final = 300
# kruisebus: an ImagePullJob whose selector matches no NodeImage yet stays Running this long after its
# creation instead of completing with desired 0. Jobs and NodeImages reach the planner on separate
# watches, so a job created right after its nodes' NodeImages can be seen before them.
IMAGE_PULL_JOB_TARGET_GRACE_SECONDS: Final = 5
MAX_IMAGES_PER_NODE_IMAGE: Final = 256
# Messages Kruise writes.
MESSAGE_NODE_NOT_RESPONDED: Final = "node has not responded for a long time"
MESSAGE_PULL_DEADLINE_EXCEEDED: Final = "pulling exceeds the activeDeadlineSeconds"
MESSAGE_JOB_COMPLETED: Final = "job has completed"
MESSAGE_JOB_NO_PROGRESS: Final = "job is running, no progress"
MESSAGE_JOB_DEADLINE_EXCEEDED: Final = "job exceeds activeDeadlineSeconds"
# Event reasons.
EVENT_CREATED_IMAGE_PULL_JOB: Final = "CreatedImagePullJob"
EVENT_FAILED_CREATE_IMAGE_PULL_JOB: Final = "FailedCreateImagePullJob"
EVENT_PULL_IMAGE_SUCCEED: Final = "PullImageSucceed"
EVENT_PULL_IMAGE_FAILED: Final = "PullImageFailed"
# PodProbeMarker (`apis/apps/v1alpha1/pod_probe_marker_types.go`, `pkg/daemon/podprobe`,
# `pkg/controller/nodepodprobe`).
KIND_PODPROBEMARKER: Final = "PodProbeMarker"
FINALIZER_NODE_POD_PROBE_CLEANUP: Final = "kruise.io/node-pod-probe-cleanup"
PROBE_SUCCEEDED: Final = "Succeeded"
PROBE_FAILED: Final = "Failed"
PROBE_UNKNOWN: Final = "Unknown"
EVENT_KRUISE_PROBE_SUCCEEDED: Final = "KruiseProbeSucceeded"
EVENT_KRUISE_PROBE_FAILED: Final = "KruiseProbeFailed"
# Probe names that would collide with the pod conditions Kubernetes and Kruise own.
RESERVED_PROBE_NAMES: Final = frozenset(
    {"PodScheduled", "Initialized", "Ready", "ContainersReady", "KruisePodReady", "InPlaceUpdateReady"})
PROBE_MESSAGE_MAX_BYTES: Final = 1024  # kruise-daemon truncates a probe's message to this many bytes
PROBE_REREPORT_SECONDS: Final = 600.0  # an unchanged result is reported again after this long
# Node label of serverless (virtual-kubelet) nodes, whose pods kruise-daemon does not probe.
LABEL_NODE_TYPE: Final = "type"
NODE_TYPE_VIRTUAL_KUBELET: Final = "virtual-kubelet"
# kruisebus: which labels, annotations and condition each `<ppm>#<probe>` set on a pod (JSON), so
# removing a marker or one of its probes removes exactly what it set, and nothing another marker set.
ANNOTATION_PROBE_MARKERS: Final = "kruisebus.io/probe-markers"
# AdvancedCronJob (`apis/apps/v1alpha1/advancedcronjob_types.go`, `apis/apps/defaults/v1beta1.go`,
# `pkg/controller/advancedcronjob/`).
KIND_ADVANCED_CRON_JOB: Final = "AdvancedCronJob"
KIND_BROADCAST_JOB: Final = "BroadcastJob"
KIND_JOB: Final = "Job"
# Child owner references name the storage version, whatever version the AdvancedCronJob was written in.
ACJ_OWNER_API_VERSION: Final = f"{GROUP}/v1beta1"
ANNOTATION_SCHEDULED_AT: Final = "apps.kruise.io/scheduled-at"  # on children: the slot, RFC 3339
CONCURRENCY_ALLOW: Final = "Allow"
CONCURRENCY_FORBID: Final = "Forbid"
CONCURRENCY_REPLACE: Final = "Replace"
CONCURRENCY_POLICIES: Final = (CONCURRENCY_ALLOW, CONCURRENCY_FORBID, CONCURRENCY_REPLACE)
DEFAULT_CONCURRENCY_POLICY: Final = CONCURRENCY_ALLOW
DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT: Final = 3
DEFAULT_FAILED_JOBS_HISTORY_LIMIT: Final = 1
MAX_MISSED_START_TIMES: Final = 100  # the 101st missed slot is an error
ACJ_NAME_MAX: Final = 63
TEMPLATE_KIND_JOB: Final = "Job"  # status.type
TEMPLATE_KIND_BROADCAST_JOB: Final = "BroadcastJob"
# kruisebus only: Kruise stays silent in these two cases (it logs and stops, or re-runs a slot).
CONDITION_SCHEDULE_FAILED: Final = "ScheduleFailed"
REASON_TOO_MANY_MISSED_START_TIMES: Final = "TooManyMissedStartTimes"
REASON_UNPARSABLE_SCHEDULE: Final = "UnparsableSchedule"
CONDITION_DELETED_CHILD_RERUN: Final = "DeletedChildRerun"
REASON_NEWEST_CHILD_DELETED: Final = "NewestChildDeleted"

# Job and BroadcastJob conditions (batch/v1 JobConditionType; Kruise's BroadcastJob reuses them).
JOB_CONDITION_COMPLETE: Final = "Complete"
JOB_CONDITION_FAILED: Final = "Failed"

# BroadcastJob (`apis/apps/v1alpha1/broadcastjob_types.go`, `pkg/controller/broadcastjob/`).
LABEL_BROADCASTJOB_NAME: Final = "broadcastjob-name"
LABEL_BROADCASTJOB_CONTROLLER_UID: Final = "broadcastjob-controller-uid"
# completionPolicy.type (COMPLETION_ALWAYS, COMPLETION_NEVER) is shared with ImagePullJob, above
FAILURE_FAIL_FAST: Final = "FailFast"
FAILURE_CONTINUE: Final = "Continue"
FAILURE_PAUSE: Final = "Pause"
BCJ_PHASE_RUNNING: Final = "running"
BCJ_PHASE_PAUSED: Final = "paused"
BCJ_PHASE_COMPLETED: Final = "completed"
BCJ_PHASE_FAILED: Final = "failed"
BCJ_NAME_MAX: Final = 63
REASON_BCJ_COMPLETE: Final = "Complete"
REASON_BCJ_FAILED: Final = "Failed"
EVENT_JOB_COMPLETE: Final = "JobComplete"
EVENT_FAILED_POD_FOUND: Final = "failed pod is found"
EVENT_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
EVENT_PAUSED: Final = "Paused"
EVENT_CONTINUE: Final = "Continue"

# Limits on hostile or runaway input (docs/reliability.md, "Limits"). One place for each number.
BUS_MAX_PAYLOAD_BYTES: Final = 1 << 20
"""The largest message the bus carries: nats-server's default `max_payload` (1 MiB), which kruisebus
runs with; a client refuses to publish more (`MaxPayloadError`)."""
MAX_OBJECT_BYTES: Final = 512 * 1024
"""The largest custom resource (its JSON) the webhook admits. Kubernetes takes up to ~1.5 MiB (etcd's
request limit), but an object's state message and the commands carrying its pod template must fit in
`BUS_MAX_PAYLOAD_BYTES` with room to spare; a larger object admitted while no webhook ran is reported as
`rejected` (reason `too-large`) by the watcher instead of stalling every other object of its kind."""
REASON_TOO_LARGE: Final = "too-large"
EVENT_RATE_PER_WORKLOAD: Final = 100.0
"""Rollout events per second one process publishes about one workload, sustained (a token bucket;
`KRUISEBUS_EVENT_RATE` overrides it, 0 turns the limit off)."""
EVENT_BURST_PER_WORKLOAD: Final = 1000
"""Rollout events one process may publish about one workload at once before the rate applies (a
1,000-pod rollout's events fit; `KRUISEBUS_EVENT_BURST`). Events over the limit are dropped and counted
(`kruisebus_events_dropped_total`); the next one that goes out is preceded by an `events-dropped` event
saying how many were dropped."""
# Advanced DaemonSet (`apis/apps/v1alpha1/daemonset_types.go`, `apis/apps/defaults/v1alpha1.go`,
# `pkg/controller/daemonset/`). Pods, revisions and pull jobs name the storage version as their owner.
KIND_DAEMONSET: Final = "DaemonSet"
DS_OWNER_API_VERSION: Final = API_VERSION_V1BETA1
DS_ROLLING_UPDATE: Final = "RollingUpdate"
DS_ON_DELETE: Final = "OnDelete"
DS_UPDATE_STRATEGY_TYPES: Final = (DS_ROLLING_UPDATE, DS_ON_DELETE)
DS_STANDARD: Final = "Standard"
DS_SURGING: Final = "Surging"  # v1alpha1 only, deprecated: the webhook rewrites it to Standard
DS_ROLLING_UPDATE_TYPES: Final = (DS_STANDARD, STRATEGY_IN_PLACE_IF_POSSIBLE, DS_SURGING)
DS_DEFAULT_BURST_REPLICAS: Final = 250
LABEL_POD_TEMPLATE_GENERATION: Final = "pod-template-generation"
ANNOTATION_DS_TEMPLATE_GENERATION: Final = "deprecated.daemonset.template.generation"
ANNOTATION_DS_PROGRESSIVE_CREATE: Final = "daemonset.kruise.io/progressive-create-pod"
# The DaemonSet default tolerations (Kubernetes `pkg/controller/daemon/util`): taint keys of the node
# lifecycle controller, and the scheduler name of pods the controller binds itself.
TAINT_NOT_READY: Final = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE: Final = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE: Final = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE: Final = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE: Final = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE: Final = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE: Final = "node.kubernetes.io/network-unavailable"
EFFECT_NO_SCHEDULE: Final = "NoSchedule"
EFFECT_NO_EXECUTE: Final = "NoExecute"
EFFECT_PREFER_NO_SCHEDULE: Final = "PreferNoSchedule"
FIELD_NODE_NAME: Final = "metadata.name"  # the matchFields key that pins a pod to one node
EVENT_SELECTING_ALL: Final = "SelectingAll"
EVENT_FAILED_DAEMON_POD: Final = "FailedDaemonPod"
# SidecarSet (`apis/apps/v1alpha1/sidecarset_types.go`, `pkg/control/sidecarcontrol/`,
# `pkg/webhook/pod/mutating/sidecarset.go`, `pkg/controller/sidecarset/`).
KIND_SIDECARSET: Final = "SidecarSet"
ANNOTATION_SIDECARSET_HASH: Final = "kruise.io/sidecarset-hash"
ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE: Final = "kruise.io/sidecarset-hash-without-image"
ANNOTATION_SIDECARSET_INJECTED_LIST: Final = "kruise.io/sidecarset-injected-list"
ANNOTATION_SIDECARSET_INPLACE_STATE: Final = "kruise.io/sidecarset-inplace-update-state"
ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER: Final = "kruise.io/sidecarset-working-hotupgrade-container"
ANNOTATION_SIDECARSET_CANARY: Final = "apps.kruise.io/sidecarset-canary"
ANNOTATION_SIDECARSET_BASE: Final = "apps.kruise.io/sidecarset-base"
LABEL_SIDECARSET_NAME: Final = "kruise.io/sidecarset-name"  # on its ControllerRevisions
LABEL_SIDECARSET_CUSTOM_VERSION: Final = "apps.kruise.io/sidecarset-custom-version"
LABEL_NAMESPACE_NAME: Final = "kubernetes.io/metadata.name"  # every Namespace carries its own name
ENV_SIDECAR_INJECTED: Final = "IS_INJECTED"
SIDECAR_BEFORE_APP: Final = "BeforeAppContainer"
SIDECAR_AFTER_APP: Final = "AfterAppContainer"
SIDECAR_COLD_UPGRADE: Final = "ColdUpgrade"
SIDECAR_HOT_UPGRADE: Final = "HotUpgrade"
SHARE_VOLUME_ENABLED: Final = "enabled"
SHARE_VOLUME_DISABLED: Final = "disabled"
RESOURCES_MODE_SUM: Final = "sum"
RESOURCES_MODE_MAX: Final = "max"
SIDECARSET_ROLLING_UPDATE: Final = "RollingUpdate"
SIDECARSET_NOT_UPDATE: Final = "NotUpdate"
REVISION_POLICY_ALWAYS: Final = "Always"
REVISION_POLICY_PARTIAL: Final = "Partial"
PATCH_POLICY_RETAIN: Final = "Retain"
PATCH_POLICY_OVERWRITE: Final = "Overwrite"
PATCH_POLICY_MERGE_JSON: Final = "MergePatchJson"
DEFAULT_SIDECARSET_HISTORY_LIMIT: Final = 10
# Where Kruise keeps SidecarSet revisions and its configuration ConfigMap (`POD_NAMESPACE` of kruise-manager).
DEFAULT_KRUISE_NAMESPACE: Final = "kruise-system"
CONFIGMAP_KRUISE_CONFIGURATION: Final = "kruise-configuration"
KEY_PATCH_METADATA_WHITELIST: Final = "SidecarSet_PatchPodMetadata_WhiteList"
CONDITION_SIDECARSET_UPGRADABLE: Final = "SidecarSetUpgradable"
REASON_ALL_SIDECARSET_UPGRADABLE: Final = "AllSidecarsetUpgradable"
REASON_UPDATE_IMMUTABLE_FIELD: Final = "UpdateImmutableField"
EVENT_NOT_UPGRADABLE_PODS: Final = "NotUpgradablePods"
# HotUpgrade sidecars: container `X` runs as `X-1`/`X-2`, their versions in these pod annotations.
ANNOTATION_SIDECARSET_VERSION_PREFIX: Final = "version.sidecarset.kruise.io/"
ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX: Final = "versionalt.sidecarset.kruise.io/"
ENV_SIDECARSET_VERSION: Final = "SIDECARSET_VERSION"
ENV_SIDECARSET_VERSION_ALT: Final = "SIDECARSET_VERSION_ALT"
EVENT_RESET_CONTAINER_SUCCEED: Final = "ResetContainerSucceed"
EVENT_RESET_CONTAINER_FAILED: Final = "ResetContainerFailed"
