"""Which nodes should run a daemon pod (`schemas.placement`, shared by the sim's scheduler and the
planners): Kruise's `nodeShouldRunDaemonPod` rows, the DaemonSet default tolerations and target nodes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.kube import Affinity, Node, PodPlacementView, Toleration
from schemas.placement import DaemonFit, daemon_should_run, daemon_tolerations, target_node


def node(name: str = "n1", labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         ready: str = "True") -> Node:
    return msgspec.convert({"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []},
                            "status": {"conditions": [{"type": "Ready", "status": ready}]}}, Node)


def pod(**spec: Any) -> PodPlacementView:
    return msgspec.convert(spec, PodPlacementView)


PIN_N2 = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}


@pytest.mark.parametrize(
    ("n", "p", "want"),
    [
        pytest.param(node(), pod(), (True, True), id="plain-node"),
        pytest.param(node(ready="False"), pod(), (True, True), id="not-ready-condition-alone-is-not-checked"),
        pytest.param(node(), pod(nodeName="n2"), (False, False), id="node-name-elsewhere"),
        pytest.param(node(), pod(nodeSelector={"a": "b"}), (False, False), id="node-selector-fails"),
        pytest.param(node(), pod(affinity=PIN_N2), (False, False), id="match-fields-other-node"),
        pytest.param(node("n2"), pod(affinity=PIN_N2), (True, True), id="match-fields-this-node"),
        pytest.param(node(taints=[{"key": "k", "effect": "NoSchedule"}]), pod(), (False, True),
                     id="noschedule-taint-stops-new-pods-only"),
        pytest.param(node(taints=[{"key": "k", "effect": "NoExecute"}]), pod(), (False, False),
                     id="noexecute-taint-evicts"),
        pytest.param(node(taints=[{"key": "k", "effect": "PreferNoSchedule"}]), pod(), (True, True),
                     id="prefer-no-schedule-ignored"),
        pytest.param(node(taints=[{"key": "k", "effect": "NoExecute"}]),
                     pod(tolerations=[{"key": "k", "operator": "Exists"}]), (True, True), id="tolerated"),
        pytest.param(node(taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]), pod(),
                     (True, True), id="default-toleration-unreachable"),
        pytest.param(node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]), pod(),
                     (False, True), id="not-ready-noschedule-not-tolerated"),
        pytest.param(node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
                     pod(), (False, True), id="network-unavailable-without-host-network"),
        pytest.param(node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
                     pod(hostNetwork=True), (True, True), id="network-unavailable-with-host-network"),
    ],
)
def test_daemon_should_run(n: Node, p: PodPlacementView, want: tuple[bool, bool]) -> None:
    assert daemon_should_run(n, p) == DaemonFit(*want)


def test_a_user_toleration_equal_to_a_default_is_replaced() -> None:
    user = Toleration(key="node.kubernetes.io/not-ready", operator="Exists", effect="NoExecute", toleration_seconds=30)
    out = daemon_tolerations([user], host_network=False)
    assert len(out) == 6 and out[0].toleration_seconds is None


@pytest.mark.parametrize(
    ("node_name", "affinity", "want"),
    [
        pytest.param("n1", PIN_N2, "n1", id="node-name-wins"),
        pytest.param("", PIN_N2, "n2", id="match-fields-in-one-value"),
        pytest.param("", None, "", id="neither"),
        pytest.param("", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}, "",
            id="two-values-is-no-target"),
    ],
)
def test_target_node(node_name: str, affinity: dict[str, Any] | None, want: str) -> None:
    aff = msgspec.convert(affinity, Affinity) if affinity is not None else None
    assert target_node(node_name, aff) == want
