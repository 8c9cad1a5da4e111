"""Every label, annotation, condition, reason and default kruisebus shares with OpenKruise.

One source of truth: services, the simulator and the tests import these names instead of spelling the
strings again, so a typo cannot silently split one fact into two.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "apps.kruise.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# Pod labels written by the CloneSet controller.
LABEL_REVISION_HASH: Final = "controller-revision-hash"
LABEL_POD_TEMPLATE_HASH: Final = "pod-template-hash"
LABEL_INSTANCE_ID: Final = "apps.kruise.io/cloneset-instance-id"
LABEL_SPECIFIED_DELETE: Final = "apps.kruise.io/specified-delete"
LABEL_LIFECYCLE_STATE: Final = "lifecycle.apps.kruise.io/state"
LABEL_EXCLUDE_PREPARING_DELETE: Final = "apps.kruise.io/cloneset-scaling-exclude-preparing-delete"
LABEL_HASH: Final = "controller.kubernetes.io/hash"  # on ControllerRevisions

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

# Defaults (kruise-semantics §0.3, §1.1).
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

# Added for the planner's parsing/validation/revision helpers (kruise-semantics §1.3, §2.1).
STRATEGY_ON_DELETE: Final = "OnDelete"  # v1beta1 only; the v1alpha1 webhook rejects it
KIND_CLONESET: Final = "CloneSet"
CONTROLLER_REVISION_API_VERSION: Final = "apps/v1"
CONTROLLER_REVISION_KIND: Final = "ControllerRevision"
# Revision names keep at most this many characters of the CloneSet name (Kubernetes ControllerRevisionName).
REVISION_NAME_PREFIX_MAX: Final = 223

# Added for the CloneSet planner (kruise-semantics §1.5 Progressing reasons, §1.6 events, §3 status).
REASON_CLONESET_AVAILABLE: Final = "CloneSetAvailable"
REASON_CLONESET_PAUSED: Final = "CloneSetPaused"
REASON_PROGRESS_PARTITION_AVAILABLE: Final = "ProgressPartitionAvailable"
REASON_PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
REASON_CLONESET_UPDATED: Final = "CloneSetUpdated"
REASON_INVALID_SPEC: Final = "InvalidSpec"
MAX_INT32: Final = 2**31 - 1
ANNOTATION_RUNTIME_CONTAINERS_META: Final = "apps.kruise.io/runtime-containers-meta"  # written by kruise-daemon
