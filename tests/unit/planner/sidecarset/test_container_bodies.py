"""The SidecarSet webhook's fake-pod check of container bodies (Kubernetes' ValidatePodCreate), as a user
meets it: each bad body is refused with Kubernetes' field error, defaulted SidecarSets pass."""

from __future__ import annotations

from typing import Any

import pytest

from services.planner.sidecarset.validation import validate_sidecarset
from tests.unit.planner.sidecarset.fixtures import sidecarset

_ENV_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
            "and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', "
            "regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")


def _errors(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None,
            volumes: list[dict[str, Any]] | None = None) -> list[str]:
    extra: dict[str, Any] = {"volumes": volumes} if volumes else {}
    if init:
        extra["updateStrategy"] = {"type": "NotUpdate"}
    ss = sidecarset("ss", containers=containers, init_containers=init, **extra)
    return [str(e) for e in validate_sidecarset(ss)]


def _c(**fields: Any) -> dict[str, Any]:
    return {"name": "agent", "image": "agent:1", **fields}


@pytest.mark.parametrize(("containers", "init", "volumes", "expected"), [
    pytest.param([_c(ports=[{"name": "http", "containerPort": 80}, {"name": "metrics", "containerPort": 9090}],
                     env=[{"name": "MY_ENV.NAME", "value": "1"}],
                     resources={"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}},
                     volumeMounts=[{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}])],
                 None, [{"name": "v", "emptyDir": {}}], [], id="valid"),
    pytest.param([_c(), {"name": "agent", "image": "b:1"}], None, None,
                 ['spec.containers[1].name: Duplicate value: "agent"'], id="duplicate-container"),
    pytest.param([_c()], [{"name": "agent", "image": "i:1"}], None,
                 ['spec.initContainers[0].name: Duplicate value: "agent"'], id="init-named-like-a-container"),
    pytest.param([_c(ports=[{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}])],
                 None, None, ['spec.containers[0].ports[1].name: Duplicate value: "http"'], id="duplicate-port-name"),
    pytest.param([_c(ports=[{"name": "HTTP_1", "containerPort": 80}])], None, None,
                 ['spec.containers[0].ports[0].name: Invalid value: "HTTP_1": must contain only alpha-numeric '
                  'characters (a-z, 0-9), and hyphens (-)',
                  'spec.containers[0].ports[0].name: Invalid value: "HTTP_1": must contain at least one letter (a-z)'],
                 id="bad-port-name"),
    pytest.param([_c(ports=[{"containerPort": 70000}])], None, None,
                 ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, "
                  "inclusive"], id="port-out-of-range"),
    pytest.param([_c(ports=[{"name": "p", "containerPort": 80, "protocol": "HTTP"}])], None, None,
                 ['spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", '
                  '"TCP", "UDP"'], id="bad-protocol"),
    pytest.param([_c(ports=[{"containerPort": 80, "hostPort": 8080}]),
                  {"name": "b", "image": "b:1", "ports": [{"containerPort": 81, "hostPort": 8080}]}], None, None,
                 ['spec.containers[1].ports[0].hostPort: Duplicate value: "/TCP/8080"'], id="duplicate-host-port"),
    pytest.param([_c(env=[{"name": "1BAD", "value": "x"}])], None, None,
                 [f'spec.containers[0].env[0].name: Invalid value: "1BAD": {_ENV_MSG}'], id="bad-env-name"),
    pytest.param([_c(resources={"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "2", "memory": "1Gi"}})],
                 None, None,
                 ['spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu '
                  'limit of 1'], id="request-above-limit"),
    pytest.param([_c(volumeMounts=[{"name": "v", "mountPath": "/a"}, {"name": "w", "mountPath": "/a"}])], None,
                 [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}],
                 ['spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/a": must be unique'],
                 id="duplicate-mount-path"),
    pytest.param([_c(volumeMounts=[{"name": "missing", "mountPath": "/a"}])], None, None,
                 ['spec.containers[0].volumeMounts[0].name: Not found: "missing"'], id="mount-of-undeclared-volume"),
    pytest.param([_c(volumeDevices=[{"name": "v", "devicePath": "/dev/x"}])], None, [{"name": "v", "emptyDir": {}}],
                 ['spec.containers[0].volumeDevices[0].name: Invalid value: "v": can only use volume source type '
                  'of PersistentVolumeClaim or Ephemeral for block mode'], id="device-not-a-claim"),
])
def test_container_bodies(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None,
                          volumes: list[dict[str, Any]] | None, expected: list[str]) -> None:
    assert _errors(containers, init, volumes) == expected


def test_init_only_sidecarset_meets_kruise_fake_container() -> None:
    """With no containers Kruise validates a fake container "test": an init container of that name clashes."""
    ss = sidecarset("ss", containers=[], init_containers=[{"name": "test", "image": "i:1"}])
    assert [str(e) for e in validate_sidecarset(ss)] == ['spec.initContainers[0].name: Duplicate value: "test"']
