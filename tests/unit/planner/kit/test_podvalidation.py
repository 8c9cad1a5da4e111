"""The kit's one pod validator: the container checks of Kubernetes' core validation every workload shares.

Each check has a valid case (no error) and an invalid one with apimachinery's exact rendering; the last
tests show the same bad probe rejected through CloneSet, DaemonSet, SidecarSet (and the job kinds)
with each kind's field path.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from schemas.advancedcronjob import AdvancedCronJob
from schemas.cloneset import CloneSet
from schemas.daemonset import DaemonSet
from schemas.kube import PodTemplateSpec
from services.planner.advancedcronjob.validation import validate_advancedcronjob
from services.planner.cloneset.validation import validate_cloneset
from services.planner.daemonset.validation import validate_daemonset
from services.planner.kit.podvalidation import container_errors, pod_template_errors, resource_name_errors
from services.planner.sidecarset.validation import validate_sidecarset
from tests.unit.planner.advancedcronjob.helpers import acj_dict
from tests.unit.planner.daemonset.helpers import ds_dict
from tests.unit.planner.sidecarset.fixtures import sidecarset

P = "spec.containers[0]"
HTTP_PROBE: dict[str, Any] = {"httpGet": {"path": "/healthz", "port": 8080}}


def errs(container: dict[str, Any], *, init: bool = False) -> list[str]:
    """The messages for one container (as the only container, or as an init container)."""
    c = {"name": "app", "image": "nginx", **container}
    main = [{"name": "main", "image": "nginx"}] if init else [c]
    return [str(e) for e in container_errors(main, [c] if init else [], [])]


# --- probes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [
    pytest.param(HTTP_PROBE, id="httpGet"),
    pytest.param({"httpGet": {"port": "http", "scheme": "HTTPS", "httpHeaders": [{"name": "X-Trace", "value": "1"}]}},
                 id="httpGet-named-port-https-header"),
    pytest.param({"tcpSocket": {"port": 5432}}, id="tcpSocket"),
    pytest.param({"exec": {"command": ["true"]}}, id="exec"),
    pytest.param({"grpc": {"port": 9090}}, id="grpc"),
    pytest.param({**HTTP_PROBE, "initialDelaySeconds": 5, "timeoutSeconds": 2, "periodSeconds": 10,
                  "successThreshold": 1, "failureThreshold": 3, "terminationGracePeriodSeconds": 10}, id="all-counters"),
    pytest.param({**HTTP_PROBE, "successThreshold": 0}, id="zero-success-is-the-default"),
])
def test_valid_probes(probe: dict[str, Any]) -> None:
    assert errs({"livenessProbe": probe, "readinessProbe": {k: v for k, v in probe.items()
                                                             if k != "terminationGracePeriodSeconds"},
                 "startupProbe": probe}) == []


@pytest.mark.parametrize(("field", "probe", "want"), [
    pytest.param("livenessProbe", {"httpGet": {"port": 80}, "tcpSocket": {"port": 80}},
                 [f"{P}.livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"], id="two-handlers"),
    pytest.param("readinessProbe", {"exec": {"command": ["a"]}, "httpGet": {"port": 80}, "grpc": {"port": 1}},
                 [f"{P}.readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                  f"{P}.readinessProbe.grpc: Forbidden: may not specify more than 1 handler type"], id="three-handlers"),
    pytest.param("startupProbe", {"periodSeconds": 5},
                 [f"{P}.startupProbe: Required value: must specify a handler type"], id="no-handler"),
    pytest.param("livenessProbe", {**HTTP_PROBE, "initialDelaySeconds": -1},
                 [f"{P}.livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"],
                 id="negative-initial-delay"),
    pytest.param("readinessProbe", {**HTTP_PROBE, "timeoutSeconds": -2, "periodSeconds": -3, "failureThreshold": -4},
                 [f"{P}.readinessProbe.timeoutSeconds: Invalid value: -2: must be greater than or equal to 0",
                  f"{P}.readinessProbe.periodSeconds: Invalid value: -3: must be greater than or equal to 0",
                  f"{P}.readinessProbe.failureThreshold: Invalid value: -4: must be greater than or equal to 0"],
                 id="negative-counters"),
    pytest.param("livenessProbe", {**HTTP_PROBE, "successThreshold": 2},
                 [f"{P}.livenessProbe.successThreshold: Invalid value: 2: must be 1"], id="liveness-success-2"),
    pytest.param("startupProbe", {**HTTP_PROBE, "successThreshold": 3},
                 [f"{P}.startupProbe.successThreshold: Invalid value: 3: must be 1"], id="startup-success-3"),
    pytest.param("livenessProbe", {**HTTP_PROBE, "successThreshold": -1},
                 [f"{P}.livenessProbe.successThreshold: Invalid value: -1: must be greater than or equal to 0",
                  f"{P}.livenessProbe.successThreshold: Invalid value: -1: must be 1"], id="liveness-success-negative"),
    pytest.param("livenessProbe", {**HTTP_PROBE, "terminationGracePeriodSeconds": 0},
                 [f"{P}.livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"],
                 id="probe-grace-zero"),
    pytest.param("readinessProbe", {**HTTP_PROBE, "terminationGracePeriodSeconds": 10},
                 [f"{P}.readinessProbe.terminationGracePeriodSeconds: Invalid value: 10: "
                  "must not be set for readinessProbes"], id="readiness-grace-set"),
    pytest.param("livenessProbe", {"httpGet": {"path": "/"}},
                 [f"{P}.livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"],
                 id="httpGet-no-port"),
    pytest.param("livenessProbe", {"httpGet": {"port": 70000}},
                 [f"{P}.livenessProbe.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive"],
                 id="httpGet-port-too-big"),
    pytest.param("livenessProbe", {"httpGet": {"port": "8080"}},
                 [f'{P}.livenessProbe.httpGet.port: Invalid value: "8080": must contain at least one letter (a-z)'],
                 id="httpGet-port-digits-as-string"),
    pytest.param("livenessProbe", {"httpGet": {"port": "http", "scheme": "FTP"}},
                 [f'{P}.livenessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS"'],
                 id="httpGet-scheme"),
    pytest.param("livenessProbe", {"httpGet": {"port": "http", "httpHeaders": [{"name": "X_Trace", "value": "1"}]}},
                 [f'{P}.livenessProbe.httpGet.httpHeaders: Invalid value: "X_Trace": a valid HTTP header must '
                  "consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is "
                  "'[-A-Za-z0-9]+')"], id="httpGet-header-name"),
    pytest.param("livenessProbe", {"tcpSocket": {"port": "Pg"}},
                 [f'{P}.livenessProbe.tcpSocket.port: Invalid value: "Pg": must contain only alpha-numeric '
                  "characters (a-z, 0-9), and hyphens (-)"], id="tcpSocket-port-name"),
    pytest.param("livenessProbe", {"tcpSocket": {"port": 0}},
                 [f"{P}.livenessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive"],
                 id="tcpSocket-port-zero"),
    pytest.param("livenessProbe", {"exec": {"command": []}},
                 [f"{P}.livenessProbe.exec.command: Required value"], id="exec-no-command"),
    pytest.param("livenessProbe", {"grpc": {"port": 65536}},
                 [f"{P}.livenessProbe.grpc.port: Invalid value: 65536: must be between 1 and 65535, inclusive"],
                 id="grpc-port"),
])
def test_invalid_probes(field: str, probe: dict[str, Any], want: list[str]) -> None:
    assert errs({field: probe}) == want


# --- lifecycle ----------------------------------------------------------------------------------


def test_valid_lifecycle() -> None:
    assert errs({"lifecycle": {"postStart": {"exec": {"command": ["init"]}},
                               "preStop": {"sleep": {"seconds": 5}}}}) == []
    assert errs({"lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/drain"}}}}) == []


@pytest.mark.parametrize(("lifecycle", "want"), [
    pytest.param({"postStart": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}}},
                 [f"{P}.lifecycle.postStart.tcpSocket: Forbidden: may not specify more than 1 handler type"],
                 id="two-handlers"),
    pytest.param({"preStop": {}}, [f"{P}.lifecycle.preStop: Required value: must specify a handler type"],
                 id="no-handler"),
    pytest.param({"preStop": {"grpc": {"port": 1}}}, [f"{P}.lifecycle.preStop: Required value: must specify a handler type"],
                 id="grpc-is-not-a-lifecycle-handler"),
    pytest.param({"postStart": {"exec": {}}}, [f"{P}.lifecycle.postStart.exec.command: Required value"],
                 id="exec-no-command"),
    pytest.param({"preStop": {"httpGet": {"port": -1}}},
                 [f"{P}.lifecycle.preStop.httpGet.port: Invalid value: -1: must be between 1 and 65535, inclusive"],
                 id="httpGet-port"),
    pytest.param({"preStop": {"sleep": {"seconds": 31}}},
                 [f"{P}.lifecycle.preStop.sleep: Invalid value: 31: must be greater than 0 and less than "
                  "terminationGracePeriodSeconds (30)"], id="sleep-above-grace"),
])
def test_invalid_lifecycle(lifecycle: dict[str, Any], want: list[str]) -> None:
    assert errs({"lifecycle": lifecycle}) == want


def test_init_containers_take_probes_and_lifecycle_only_with_restart_policy_always() -> None:
    hooks = {"lifecycle": {"preStop": {"exec": {"command": ["a"]}}}, "livenessProbe": HTTP_PROBE,
             "readinessProbe": HTTP_PROBE, "startupProbe": HTTP_PROBE}
    i = "spec.initContainers[0]"
    assert errs(hooks, init=True) == [
        f"{i}.{f}: Forbidden: may not be set for init containers without restartPolicy=Always"
        for f in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")]
    assert errs({**hooks, "restartPolicy": "Always"}, init=True) == []
    assert errs({"restartPolicy": "Always", "livenessProbe": {}}, init=True) == [
        f"{i}.livenessProbe: Required value: must specify a handler type"]


# --- securityContext ------------------------------------------------------------------------------


def test_valid_security_context() -> None:
    assert errs({"securityContext": {"runAsUser": 0, "runAsGroup": 2147483647, "privileged": True,
                                     "allowPrivilegeEscalation": True,
                                     "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_ADMIN"]}}}) == []
    assert errs({"securityContext": {"allowPrivilegeEscalation": False, "privileged": False}}) == []


@pytest.mark.parametrize(("sc", "want"), [
    pytest.param({"runAsUser": -1}, [f"{P}.securityContext.runAsUser: Invalid value: -1: must be between 0 and "
                                     "2147483647, inclusive"], id="run-as-user"),
    pytest.param({"runAsGroup": 2147483648}, [f"{P}.securityContext.runAsGroup: Invalid value: 2147483648: must be "
                                              "between 0 and 2147483647, inclusive"], id="run-as-group"),
    pytest.param({"allowPrivilegeEscalation": False, "privileged": True},
                 [f'{P}.securityContext: Invalid value: {{"allowPrivilegeEscalation":false,"privileged":true}}: '
                  "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"], id="privileged"),
    pytest.param({"allowPrivilegeEscalation": False, "capabilities": {"add": ["CAP_SYS_ADMIN"]}},
                 [f'{P}.securityContext: Invalid value: {{"allowPrivilegeEscalation":false,"capabilities":{{"add":'
                  '["CAP_SYS_ADMIN"]}}: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` '
                  "CAP_SYS_ADMIN"], id="cap-sys-admin"),
])
def test_invalid_security_context(sc: dict[str, Any], want: list[str]) -> None:
    assert errs({"securityContext": sc}) == want


# --- resource names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "memory", "ephemeral-storage", "hugepages-2Mi", "example.com/gpu",
                                  "nvidia.com/gpu", "kubernetes.io/something"])
def test_valid_resource_names(name: str) -> None:
    assert resource_name_errors(name) == []
    assert errs({"resources": {"limits": {name: "1"}, "requests": {name: "1"}}}) == []


@pytest.mark.parametrize(("name", "want"), [
    pytest.param("gpu", ["must be a standard resource type or fully qualified",
                         "must be a standard resource for containers"], id="no-domain-not-standard"),
    pytest.param("pods", ["must be a standard resource for containers"], id="standard-but-not-for-containers"),
    pytest.param("requests.example.com/gpu", ["doesn't follow extended resource name standard"],
                 id="requests-prefix-is-not-extended"),
])
def test_invalid_resource_names(name: str, want: list[str]) -> None:
    assert resource_name_errors(name) == want


def test_resource_name_errors_are_field_errors_under_limits_and_requests() -> None:
    assert errs({"resources": {"limits": {"gpu": "1"}, "requests": {"example.com/gpu": "1", "pods": "1"}}}) == [
        f'{P}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
        f'{P}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        f'{P}.resources.requests[pods]: Invalid value: "pods": must be a standard resource for containers',
    ]


# --- the template entry ---------------------------------------------------------------------------


def _template(**spec: Any) -> PodTemplateSpec:
    return msgspec.convert({"spec": {"containers": [{"name": "app", "image": "nginx"}], **spec}}, PodTemplateSpec)


def test_template_containers_are_checked_defaulted() -> None:
    """A template is stored without defaults; Kruise validates a defaulted copy, so a port without a
    protocol (TCP once defaulted) is no error, and the template itself is left as written."""
    t = _template(containers=[{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}])
    before = copy.deepcopy(t.spec)
    assert pod_template_errors(t, "spec.template") == []
    assert t.spec == before


def test_template_init_container_named_like_a_container_is_the_duplicate() -> None:
    t = _template(initContainers=[{"name": "app", "image": "busybox"}])
    assert [str(e) for e in pod_template_errors(t, "spec.template")] == [
        'spec.template.spec.initContainers[0].name: Duplicate value: "app"']


def test_template_mounts_must_name_a_volume_or_a_mocked_one() -> None:
    t = _template(containers=[{"name": "app", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}])
    assert [str(e) for e in pod_template_errors(t, "spec.template")] == [
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"']
    assert pod_template_errors(t, "spec.template", extra_volumes=[{"name": "data", "persistentVolumeClaim": {}}]) == []


def test_template_restart_policies_are_the_kinds() -> None:
    t = _template(restartPolicy="OnFailure")
    assert pod_template_errors(t, "spec.template") == []
    assert pod_template_errors(t, "spec.template", restart_policies=None) == []
    assert [str(e) for e in pod_template_errors(t, "spec.template", restart_policies=("Always",))] == [
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']


def test_template_grace_period_bounds_a_sleep() -> None:
    c = {"name": "app", "image": "nginx", "lifecycle": {"preStop": {"sleep": {"seconds": 45}}}}
    assert pod_template_errors(_template(containers=[c], terminationGracePeriodSeconds=60), "spec.template") == []
    assert [str(e) for e in pod_template_errors(_template(containers=[c]), "spec.template")] == [
        "spec.template.spec.containers[0].lifecycle.preStop.sleep: Invalid value: 45: must be greater than 0 and "
        "less than terminationGracePeriodSeconds (30)"]


# --- every workload, one bad probe ------------------------------------------------------------------

BAD_PROBE: dict[str, Any] = {"httpGet": {"port": 80}, "exec": {"command": ["true"]}}


def _bad(container: dict[str, Any]) -> dict[str, Any]:
    return {**container, "livenessProbe": copy.deepcopy(BAD_PROBE)}


def test_every_workload_rejects_a_bad_probe_at_its_own_path() -> None:
    detail = "Forbidden: may not specify more than 1 handler type"

    cs = msgspec.convert({
        "metadata": {"name": "cs", "namespace": "default", "uid": "u"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [_bad({"name": "app", "image": "nginx"})]}}},
    }, CloneSet)
    assert [str(e) for e in validate_cloneset(cs)] == [
        f"spec.template.spec.containers[0].livenessProbe.httpGet: {detail}"]

    ds = ds_dict()
    ds["spec"]["template"]["spec"]["containers"] = [_bad(c) for c in ds["spec"]["template"]["spec"]["containers"]]
    assert [str(e) for e in validate_daemonset(msgspec.convert(ds, DaemonSet))] == [
        f"spec.template.spec.containers[0].livenessProbe.httpGet: {detail}"]

    ss = sidecarset("ss", containers=[_bad({"name": "sidecar", "image": "sidecar:v1"})])
    assert [str(e) for e in validate_sidecarset(ss)] == [f"spec.containers[0].livenessProbe.httpGet: {detail}"]

    acj = acj_dict()
    pod_spec = acj["spec"]["template"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["containers"] = [_bad(c) for c in pod_spec["containers"]]
    assert [str(e) for e in validate_advancedcronjob(msgspec.convert(acj, AdvancedCronJob))] == [
        f"spec.template.spec.containers[0].livenessProbe.httpGet: {detail}"]
