"""OpenKruise feature gates (``pkg/features/kruise_features.go``) as an immutable value.

Kruise reads gates from a process-global; the planner is pure, so gates are passed in explicitly as a
frozen Struct. Every Kruise gate is listed (not just the ones CloneSet reads) so that a
``--feature-gates`` string copied from a Kruise deployment parses unchanged. The implications Kruise's
``SetDefaultFeatureGates`` applies after flag parsing (e.g. KruiseDaemon off forces the image/probe gates
off) are applied by :func:`parse_feature_gates`, so a gate set can never be in a state Kruise forbids.
"""

from __future__ import annotations

from typing import Final

import msgspec


class FeatureGates(msgspec.Struct, frozen=True, kw_only=True):
    """One boolean per Kruise gate; attribute = snake_case of the Kruise name, default = Kruise's default."""

    pod_webhook: bool = True
    kruise_daemon: bool = True
    daemon_watching_pod: bool = True
    clone_set_short_hash: bool = False
    kruise_pod_readiness_gate: bool = False
    pre_download_image_for_in_place_update: bool = False
    clone_set_partition_rollback: bool = False
    resources_deletion_protection: bool = False
    workload_spread: bool = True
    pod_unavailable_budget_delete_gate: bool = True
    pod_unavailable_budget_update_gate: bool = False
    template_no_defaults: bool = False
    in_place_update_env_from_metadata: bool = True
    stateful_set_auto_delete_pvc: bool = True
    sidecar_set_patch_pod_metadata_defaults_allowed: bool = False
    sidecar_terminator: bool = False
    pod_probe_marker_gate: bool = True
    pre_download_image_for_daemon_set_update: bool = False
    clone_set_event_handler_optimization: bool = False
    preparing_update_as_update: bool = False
    image_pull_job_gate: bool = False
    resource_distribution_gate: bool = False
    deletion_protection_for_crd_cascading_gate: bool = False
    enhanced_liveness_probe: bool = False
    recreate_pod_when_change_vct_in_clone_set_gate: bool = False
    stateful_set_start_ordinal: bool = False
    pod_index_label: bool = True
    enable_external_certs: bool = False
    stateful_set_auto_resize_pvc_gate: bool = False
    force_delete_timeout_expectation_gate: bool = False
    in_place_workload_vertical_scaling: bool = False
    enable_pod_probe_marker_on_serverless: bool = False
    enable_sort_sidecar_container_by_name: bool = False
    in_place_pod_vertical_scaling: bool = False
    default_host_network_host_ports_in_pod_templates: bool = False
    daemon_set_prune_ineligible_nodes: bool = False

    def get(self, name: str) -> bool:
        """Look a gate up by its Kruise name ("CloneSetPartitionRollback"); unknown names raise ValueError."""
        try:
            attr = GATE_ATTRIBUTES[name]
        except KeyError:
            raise ValueError(f"unrecognized feature gate: {name}") from None
        value: bool = getattr(self, attr)
        return value

    def to_spec(self) -> str:
        """The gates that differ from Kruise's defaults, in ``--feature-gates`` form (sorted, stable)."""
        parts = [
            f"{name}={'true' if self.get(name) else 'false'}"
            for name in sorted(GATE_ATTRIBUTES)
            if self.get(name) != DEFAULT_GATES.get(name)
        ]
        return ",".join(parts)


GATE_ATTRIBUTES: Final[dict[str, str]] = {
    "PodWebhook": "pod_webhook",
    "KruiseDaemon": "kruise_daemon",
    "DaemonWatchingPod": "daemon_watching_pod",
    "CloneSetShortHash": "clone_set_short_hash",
    "KruisePodReadinessGate": "kruise_pod_readiness_gate",
    "PreDownloadImageForInPlaceUpdate": "pre_download_image_for_in_place_update",
    "CloneSetPartitionRollback": "clone_set_partition_rollback",
    "ResourcesDeletionProtection": "resources_deletion_protection",
    "WorkloadSpread": "workload_spread",
    "PodUnavailableBudgetDeleteGate": "pod_unavailable_budget_delete_gate",
    "PodUnavailableBudgetUpdateGate": "pod_unavailable_budget_update_gate",
    "TemplateNoDefaults": "template_no_defaults",
    "InPlaceUpdateEnvFromMetadata": "in_place_update_env_from_metadata",
    "StatefulSetAutoDeletePVC": "stateful_set_auto_delete_pvc",
    "SidecarSetPatchPodMetadataDefaultsAllowed": "sidecar_set_patch_pod_metadata_defaults_allowed",
    "SidecarTerminator": "sidecar_terminator",
    "PodProbeMarkerGate": "pod_probe_marker_gate",
    "PreDownloadImageForDaemonSetUpdate": "pre_download_image_for_daemon_set_update",
    "CloneSetEventHandlerOptimization": "clone_set_event_handler_optimization",
    "PreparingUpdateAsUpdate": "preparing_update_as_update",
    "ImagePullJobGate": "image_pull_job_gate",
    "ResourceDistributionGate": "resource_distribution_gate",
    "DeletionProtectionForCRDCascadingGate": "deletion_protection_for_crd_cascading_gate",
    "EnhancedLivenessProbe": "enhanced_liveness_probe",
    "RecreatePodWhenChangeVCTInCloneSetGate": "recreate_pod_when_change_vct_in_clone_set_gate",
    "StatefulSetStartOrdinal": "stateful_set_start_ordinal",
    "PodIndexLabel": "pod_index_label",
    "EnableExternalCerts": "enable_external_certs",
    "StatefulSetAutoResizePVCGate": "stateful_set_auto_resize_pvc_gate",
    "ForceDeleteTimeoutExpectationGate": "force_delete_timeout_expectation_gate",
    "InPlaceWorkloadVerticalScaling": "in_place_workload_vertical_scaling",
    "EnablePodProbeMarkerOnServerless": "enable_pod_probe_marker_on_serverless",
    "EnableSortSidecarContainerByName": "enable_sort_sidecar_container_by_name",
    "InPlacePodVerticalScaling": "in_place_pod_vertical_scaling",
    "DefaultHostNetworkHostPortsInPodTemplates": "default_host_network_host_ports_in_pod_templates",
    "DaemonSetPruneIneligibleNodes": "daemon_set_prune_ineligible_nodes",
}
"""Kruise gate name -> FeatureGates attribute."""

DEFAULT_GATES: Final = FeatureGates()
DEFAULTS: Final = DEFAULT_GATES

# strconv.ParseBool's accepted spellings.
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

_POD_WEBHOOK_DEPENDENTS: Final = (
    "kruise_pod_readiness_gate",
    "pod_unavailable_budget_delete_gate",
    "pod_unavailable_budget_update_gate",
    "workload_spread",
    "sidecar_set_patch_pod_metadata_defaults_allowed",
    "enhanced_liveness_probe",
    "enable_pod_probe_marker_on_serverless",
)
_KRUISE_DAEMON_DEPENDENTS: Final = (
    "pre_download_image_for_in_place_update",
    "daemon_watching_pod",
    "in_place_update_env_from_metadata",
    "pre_download_image_for_daemon_set_update",
    "pod_probe_marker_gate",
    "sidecar_terminator",
    "image_pull_job_gate",
    "enhanced_liveness_probe",
)


def apply_implications(gates: FeatureGates) -> FeatureGates:
    """Kruise's ``SetDefaultFeatureGates``, in its order.

    Order matters: KruiseDaemon=false turns PreDownloadImageForInPlaceUpdate off *before* the check that
    force-enables ImagePullJobGate, so with the daemon off the image-pull gate stays off.
    """
    values = {attr: bool(getattr(gates, attr)) for attr in GATE_ATTRIBUTES.values()}
    if not values["pod_webhook"]:
        values.update(dict.fromkeys(_POD_WEBHOOK_DEPENDENTS, False))
    if not values["kruise_daemon"]:
        values.update(dict.fromkeys(_KRUISE_DAEMON_DEPENDENTS, False))
    if values["pre_download_image_for_in_place_update"] or values["pre_download_image_for_daemon_set_update"]:
        values["image_pull_job_gate"] = True
    if not values["resources_deletion_protection"]:
        values["deletion_protection_for_crd_cascading_gate"] = False
    return FeatureGates(**values)


def parse_feature_gates(spec: str, base: FeatureGates = DEFAULTS) -> FeatureGates:
    """Parse Kruise's ``--feature-gates`` syntax ("A=true,B=false") over ``base``, then apply implications.

    Mirrors Kubernetes' featuregate ``Set``: entries are comma separated and whitespace-trimmed, empty
    entries are skipped, values use Go's ParseBool spellings. Unknown names and bad values raise a
    ValueError naming the offending entry, so a typo in deployment config fails loudly at start-up.
    """
    values = {attr: bool(getattr(base, attr)) for attr in GATE_ATTRIBUTES.values()}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, val = entry.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"missing bool value for {key}")
        if key not in GATE_ATTRIBUTES:
            raise ValueError(f"unrecognized feature gate: {key}")
        val = val.strip()
        if val in _TRUE:
            values[GATE_ATTRIBUTES[key]] = True
        elif val in _FALSE:
            values[GATE_ATTRIBUTES[key]] = False
        else:
            raise ValueError(
                f"invalid value of {key}={val}, err: strconv.ParseBool: parsing {val!r}: invalid syntax"
            )
    return apply_implications(FeatureGates(**values))
