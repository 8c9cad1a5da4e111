"""Feature gates: Kruise defaults, --feature-gates parsing, and SetDefaultFeatureGates implications."""

from __future__ import annotations

import msgspec
import pytest

from services.planner.kit.gates import (
    DEFAULT_GATES,
    DEFAULTS,
    GATE_ATTRIBUTES,
    FeatureGates,
    apply_implications,
    parse_feature_gates,
)


def test_defaults_match_kruise() -> None:
    g = DEFAULT_GATES
    assert DEFAULTS is DEFAULT_GATES
    assert (
        g.kruise_daemon and g.pod_webhook and g.pod_probe_marker_gate and g.in_place_update_env_from_metadata
    )
    assert not g.clone_set_partition_rollback
    assert not g.preparing_update_as_update
    assert not g.clone_set_short_hash
    assert not g.pre_download_image_for_in_place_update
    assert not g.image_pull_job_gate
    assert not g.template_no_defaults
    assert not g.recreate_pod_when_change_vct_in_clone_set_gate
    assert not g.in_place_workload_vertical_scaling
    assert not g.force_delete_timeout_expectation_gate
    assert g.get("CloneSetPartitionRollback") is False
    assert g.to_spec() == ""


def test_every_gate_name_maps_to_an_attribute() -> None:
    fields = set(FeatureGates.__struct_fields__)
    assert set(GATE_ATTRIBUTES.values()) == fields
    for name in GATE_ATTRIBUTES:
        assert isinstance(DEFAULT_GATES.get(name), bool)


def test_parse_cli_format() -> None:
    g = parse_feature_gates("CloneSetPartitionRollback=true,PreparingUpdateAsUpdate=false")
    assert g.clone_set_partition_rollback
    assert not g.preparing_update_as_update
    g = parse_feature_gates(" CloneSetShortHash = TRUE , , PreparingUpdateAsUpdate=1")
    assert g.clone_set_short_hash and g.preparing_update_as_update
    assert parse_feature_gates("") == DEFAULT_GATES


def test_parse_over_base() -> None:
    base = parse_feature_gates("CloneSetPartitionRollback=true")
    g = parse_feature_gates("CloneSetShortHash=true", base)
    assert g.clone_set_partition_rollback and g.clone_set_short_hash
    assert parse_feature_gates(g.to_spec()) == g


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("NoSuchGate=true", "NoSuchGate"),
        ("CloneSetPartitionRollback=yes", "CloneSetPartitionRollback"),
        ("CloneSetPartitionRollback", "CloneSetPartitionRollback"),
    ],
)
def test_parse_errors_name_the_entry(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_feature_gates(spec)


def test_get_unknown() -> None:
    with pytest.raises(ValueError, match="Bogus"):
        DEFAULT_GATES.get("Bogus")


def test_kruise_daemon_off_forces_dependents_off() -> None:
    g = parse_feature_gates(
        "KruiseDaemon=false,PreDownloadImageForInPlaceUpdate=true,PodProbeMarkerGate=true"
    )
    assert not g.kruise_daemon
    assert not g.pre_download_image_for_in_place_update
    assert not g.pod_probe_marker_gate
    assert not g.in_place_update_env_from_metadata
    assert not g.image_pull_job_gate  # daemon-off runs before the pre-download -> image-pull implication


def test_predownload_forces_image_pull_job_gate() -> None:
    assert parse_feature_gates("PreDownloadImageForInPlaceUpdate=true").image_pull_job_gate
    assert parse_feature_gates("PreDownloadImageForDaemonSetUpdate=true").image_pull_job_gate


def test_pod_webhook_off_and_deletion_protection() -> None:
    g = parse_feature_gates(
        "PodWebhook=false,KruisePodReadinessGate=true,PodUnavailableBudgetUpdateGate=true"
    )
    assert (
        not g.kruise_pod_readiness_gate and not g.pod_unavailable_budget_update_gate and not g.workload_spread
    )
    g = parse_feature_gates("DeletionProtectionForCRDCascadingGate=true")
    assert not g.deletion_protection_for_crd_cascading_gate
    g = parse_feature_gates("ResourcesDeletionProtection=true,DeletionProtectionForCRDCascadingGate=true")
    assert g.deletion_protection_for_crd_cascading_gate


def test_frozen_and_implications_idempotent() -> None:
    g = parse_feature_gates("KruiseDaemon=false")
    assert apply_implications(g) == g
    with pytest.raises(AttributeError):
        g.kruise_daemon = True  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(g), type=FeatureGates) == g
