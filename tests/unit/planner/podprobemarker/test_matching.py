"""Which marker probes run on which pod: Kruise's PodProbeMarker controller tests
(`pkg/controller/podprobemarker/pod_probe_marker_controller_test.go` TestSyncPodProbeMarker), with the
node's probe list computed from the markers instead of merged into a NodePodProbe."""

from __future__ import annotations

import msgspec

from services.planner.podprobemarker.matching import matched_pods, pod_probes
from tests.unit.planner.podprobemarker.fixtures import pod, ppm


def idle_marker(name: str = "ppm-2") -> object:
    return ppm(name, probes=[{"name": "idle", "containerName": "main", "podConditionType": "game.kruise.io/idle",
                              "probe": {"exec": {"command": ["/idle.sh"]}}}])


def test_I1_merge_probes_of_two_markers() -> None:
    probes = pod_probes([ppm("ppm-1"), idle_marker()], pod())  # type: ignore[list-item]
    assert [p.name for p in probes] == ["ppm-1#healthy", "ppm-2#idle"]


def test_I2_deleted_marker_s_probes_are_gone_others_kept() -> None:
    deleting = msgspec.structs.replace(ppm("ppm-1"), metadata=msgspec.structs.replace(
        ppm("ppm-1").metadata, deletion_timestamp="2026-01-01T00:00:00Z"))
    assert [p.name for p in pod_probes([deleting, idle_marker()], pod())] == ["ppm-2#idle"]  # type: ignore[list-item]


def test_I3_changed_command_is_the_new_one() -> None:
    changed = ppm("ppm-1", probes=[{"name": "healthy", "containerName": "main", "podConditionType": "x.io/h",
                                    "probe": {"exec": {"command": ["/new.sh"]}}}])
    [probe] = pod_probes([changed], pod())
    assert probe.name == "ppm-1#healthy" and probe.probe.exec is not None and probe.probe.exec.command == ["/new.sh"]


def test_I4_unresolvable_named_port_skips_that_probe() -> None:
    marker = ppm("ppm-1", probes=[
        {"name": "tcp", "containerName": "main", "podConditionType": "x.io/t", "probe": {"tcpSocket": {"port": "main-port"}}},
        {"name": "http", "containerName": "main", "podConditionType": "x.io/h",
         "probe": {"httpGet": {"port": "http", "path": "/", "scheme": "HTTP"}}},
    ])
    probes = pod_probes([marker], pod(ports=[{"name": "http", "containerPort": 8080}]))
    assert [p.name for p in probes] == ["ppm-1#http"]
    assert probes[0].probe.http_get is not None and probes[0].probe.http_get.port == 8080


def test_only_initialized_scheduled_selected_pods_of_the_namespace_match() -> None:
    pods = [pod("a"), pod("b", initialized=False), pod("c", node=""), pod("d", labels={"app": "other"})]
    assert [p.metadata.name for p in matched_pods(ppm(), pods)] == ["a"]
