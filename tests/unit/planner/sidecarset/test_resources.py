"""resourcesPolicy and shareVolumeDevicePolicy at injection, and their validation.

The vectors of Kruise's `pkg/webhook/pod/mutating/sidecarset_resources_test.go` (TestApplyResourcesPolicy)
and `pkg/util/calculator/calculator_test.go`, checked through the pod the webhook returns.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.planner.sidecarset.inject import InjectError, InjectionView, inject
from services.planner.sidecarset.resources import (
    ExpressionError,
    Quantity,
    _Value,
    calculate,
    expression_error,
    go_g,
)
from services.planner.sidecarset.validation import validate_sidecarset
from tests.unit.planner.sidecarset.fixtures import names, pod, sidecarset


def _app(name: str, limits: dict[str, str] | None = None, requests: dict[str, str] | None = None,
         **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    return {"name": name, "image": f"{name}:1", "resources": resources, **extra}


def _inject(p: dict[str, Any], sidecar: dict[str, Any], *, init: bool = False) -> dict[str, Any]:
    ss = sidecarset("ss", **({"init_containers": [sidecar], "containers": []} if init else {"containers": [sidecar]}))
    out = inject(p, InjectionView(sidecarsets=[ss], namespaces={"default": {}}), namespace="default",
                 now="2026-01-01T00:00:00Z")
    assert out is not None
    return out


def _resources_of(out: dict[str, Any], name: str = "sidecar1", key: str = "containers") -> dict[str, Any]:
    return next(c for c in out["spec"][key] if c["name"] == name)["resources"]


def _policy(mode: str, regex: str, limits: dict[str, str] | None, requests: dict[str, str] | None) -> dict[str, Any]:
    expr: dict[str, Any] = {}
    if limits is not None:
        expr["limits"] = limits
    if requests is not None:
        expr["requests"] = requests
    return {"targetContainersMode": mode, "targetContainersNameRegex": regex, "resourcesExpr": expr}


_TWO_ENGINES = [
    _app("large.engine.v4", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "50m", "memory": "100Mi"}),
    _app("large.engine.v8", {"cpu": "400m", "memory": "400Mi"}, {"cpu": "100m", "memory": "200Mi"}),
]


@pytest.mark.parametrize(("containers", "policy", "expected"), [
    pytest.param(_TWO_ENGINES, _policy("sum", ".*", {"cpu": "cpu*50%", "memory": "200Mi"},
                                       {"cpu": "cpu*50%", "memory": "100Mi"}),
                 {"limits": {"cpu": "300m", "memory": "200Mi"}, "requests": {"cpu": "75m", "memory": "100Mi"}},
                 id="sum-percentage"),
    pytest.param(_TWO_ENGINES, _policy("max", "^large.engine.v.*$", {"cpu": "max(cpu*50%, 50m)", "memory": "200Mi"},
                                       {"cpu": "max(cpu*50%, 50m)", "memory": "100Mi"}),
                 {"limits": {"cpu": "200m", "memory": "200Mi"}, "requests": {"cpu": "50m", "memory": "100Mi"}},
                 id="max-expression"),
    pytest.param(_TWO_ENGINES, _policy("sum", "^large.engine.v4$", {"cpu": "max(cpu*50%, 50m)", "memory": "200Mi"},
                                       {"cpu": "max(cpu*50%, 50m)", "memory": "100Mi"}),
                 {"limits": {"cpu": "100m", "memory": "200Mi"}, "requests": {"cpu": "50m", "memory": "100Mi"}},
                 id="regex-one-container"),
    pytest.param([_app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "100Mi"}),
                  _app("app2", {"memory": "400Mi"}, {"cpu": "50m", "memory": "200Mi"})],
                 _policy("sum", ".*", {"cpu": "cpu*50%", "memory": "memory*30%"},
                         {"cpu": "cpu*30%", "memory": "memory*20%"}),
                 {"limits": {"memory": "180Mi"}, "requests": {"cpu": "45m", "memory": "60Mi"}},
                 id="sum-one-container-without-cpu-limit"),
    pytest.param([_app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "100Mi"}),
                  _app("app2", {"cpu": "400m"}, {"cpu": "200m"})],
                 _policy("max", ".*", {"cpu": "cpu*40%", "memory": "memory*30%"},
                         {"cpu": "cpu*25%", "memory": "memory*20%"}),
                 {"limits": {"cpu": "160m"}, "requests": {"cpu": "50m", "memory": "20Mi"}},
                 id="max-one-container-without-memory-limit"),
    pytest.param([_app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "100Mi"}),
                  _app("app2", {"cpu": "400m", "memory": "400Mi"})],
                 _policy("sum", ".*", {"cpu": "cpu*50%", "memory": "memory*30%"},
                         {"cpu": "cpu*30%", "memory": "memory*20%"}),
                 {"limits": {"cpu": "300m", "memory": "180Mi"}, "requests": {"cpu": "30m", "memory": "20Mi"}},
                 id="sum-container-without-requests"),
    pytest.param([_app("a", {"memory": "1Gi"})], _policy("sum", ".*", {"memory": "memory/2 + 100Mi"}, None),
                 {"limits": {"memory": "612Mi"}}, id="binary-suffix-kept"),
    pytest.param([_app("a", {"cpu": "1"})], _policy("sum", ".*", None, {"cpu": "0.25"}),
                 {"requests": {"cpu": "250m"}}, id="number-result-as-millicores"),
])
def test_resources_policy_at_injection(containers: list[dict[str, Any]], policy: dict[str, Any],
                                       expected: dict[str, Any]) -> None:
    out = _inject(pod(containers=containers), {"name": "sidecar1", "image": "s:1", "resourcesPolicy": policy})
    assert _resources_of(out) == expected
    assert "resourcesPolicy" not in next(c for c in out["spec"]["containers"] if c["name"] == "sidecar1")


def test_resources_policy_native_sidecar_targets_and_init_sidecar() -> None:
    """Kruise's "init-container with resource policy (native sidecar)": native-sidecar init containers are
    targets, plain init containers are not; an init sidecar gets its resources too."""
    p = pod(containers=[_app("app-main", {"cpu": "400m", "memory": "800Mi"}, {"cpu": "200m", "memory": "400Mi"})],
            initContainers=[_app("app-native", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "100Mi"},
                                 restartPolicy="Always"),
                            _app("app-plain", {"cpu": "9", "memory": "9Gi"}, {"cpu": "9", "memory": "9Gi"})])
    policy = _policy("sum", "^app.*$", {"cpu": "cpu*50%", "memory": "memory*50%"},
                     {"cpu": "cpu/3", "memory": "memory/4"})
    out = _inject(p, {"name": "sidecar1", "image": "s:1", "restartPolicy": "Always", "resourcesPolicy": policy},
                  init=True)
    assert _resources_of(out, key="initContainers") == {"limits": {"cpu": "300m", "memory": "500Mi"},
                                                        "requests": {"cpu": "100m", "memory": "125Mi"}}


def test_resources_policy_hot_upgrade_pair_both_get_resources() -> None:
    out = _inject(pod(containers=[_app("app", {"cpu": "1"})]),
                  {"name": "sidecar1", "image": "s:1", "upgradeStrategy": {"upgradeType": "HotUpgrade",
                                                                         "hotUpgradeEmptyImage": "empty:1"},
                   "resourcesPolicy": _policy("sum", ".*", {"cpu": "cpu/10"}, None)})
    assert _resources_of(out, "sidecar1-1") == _resources_of(out, "sidecar1-2") == {"limits": {"cpu": "100m"}}


def test_resources_policy_no_target_rejects_pod() -> None:
    with pytest.raises(InjectError, match=r'^no containers match the regex pattern "\^nonexistent\$"$'):
        _inject(pod(containers=[_app("app", {"cpu": "1"})]),
                {"name": "sidecar1", "image": "s:1",
                 "resourcesPolicy": _policy("sum", "^nonexistent$", {"cpu": "cpu"}, None)})


def test_resources_policy_sidecar_named_container_is_not_a_target() -> None:
    """A pod container named like a sidecar is replaced, so it is not a target."""
    with pytest.raises(InjectError, match="no containers match"):
        _inject(pod(containers=[_app("sidecar1", {"cpu": "1"})]),
                {"name": "sidecar1", "image": "s:1", "resourcesPolicy": _policy("sum", ".*", {"cpu": "cpu"}, None)})


def test_resources_policy_evaluation_error_rejects_pod() -> None:
    with pytest.raises(InjectError, match=r'^failed to evaluate CPU limits expression: failed to parse expression '
                                          r'"cpu\*cpu": multiplication of two quantities$'):
        _inject(pod(containers=[_app("app", {"cpu": "1"})]),
                {"name": "sidecar1", "image": "s:1", "resourcesPolicy": _policy("sum", ".*", {"cpu": "cpu*cpu"}, None)})


def _q(text: str) -> _Value:
    from services.planner.kit.gojson import parse_quantity
    parsed = parse_quantity(text)
    assert parsed is not None
    return _Value(q=Quantity(*parsed))


@pytest.mark.parametrize(("expression", "cpu", "expected"), [
    ("2 + 3 * 4", None, "14"),
    ("(2 + 3) * 4", None, "20"),
    ("10 - 2 - 3", None, "5"),
    ("max(cpu*50%, 50m)", "200m", "100m"),
    ("min(cpu, 150m)", "200m", "150m"),
    ("cpu + 0.5", "1", "1500m"),
    ("cpu / 3", "1", "333m"),
    ("-2 * -3", None, "6"),
    ("1.5", None, "1.5"),
])
def test_calculator(expression: str, cpu: str | None, expected: str) -> None:
    variables = {"cpu": _q(cpu)} if cpu is not None else {}
    assert str(calculate(expression, variables)) == expected


@pytest.mark.parametrize(("expression", "message"), [
    ("cpu*cpu", "multiplication of two quantities"),
    ("1 / cpu", "division by quantity"),
    ("cpu / 0", "division by zero"),
    ("cpu - 2", "calculation result is negative: -1"),
    ("foo(cpu)", "unknown function: foo"),
    ("max(cpu)", "max function requires exactly 2 arguments, got 1"),
    ("memory * 2", "undefined variable: memory"),
    ("cpu +", "parse error: syntax error at line 1, col 6"),
    ("max(cpu, 1, 2)", "parse error: syntax error at line 1, col 12"),
])
def test_calculator_errors(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as e:
        calculate(expression, {"cpu": _q("1")})
    assert str(e.value) == message


def test_go_g() -> None:
    assert [go_g(x) for x in (0.5, -1.0, 100000.0, 1e6, 123456789.0, 1e-5, 3.25)] == [
        "0.5", "-1", "100000", "1e+06", "1.23456789e+08", "1e-05", "3.25"]


def test_expression_validated_with_its_field_variable() -> None:
    """The webhook evaluates each expression with its own variable set to the number 1 (so a quantity
    squared passes validation and only fails at injection)."""
    assert expression_error("cpu*cpu", "cpu") is None
    assert expression_error("memory*2", "cpu") == "invalid expression: undefined variable: memory"
    assert expression_error("memory - 5", "memory") == "invalid expression: calculation result is negative: -4"


def test_validation_names_the_bad_expression() -> None:
    ss = sidecarset("ss", containers=[{"name": "c", "image": "c:1", "resourcesPolicy": _policy(
        "sum", ".*", {"cpu": "cpu*", "memory": "memory"}, {"cpu": "memory*2"})}])
    assert [str(e) for e in validate_sidecarset(ss)] == [
        'spec[0].resourcesPolicy.resourcesExpr.limits.cpu: Invalid value: "cpu*": invalid expression: '
        "parse error: syntax error at line 1, col 5",
        'spec[0].resourcesPolicy.resourcesExpr.requests.cpu: Invalid value: "memory*2": invalid expression: '
        "undefined variable: memory",
    ]


def test_validation_empty_regex() -> None:
    ss = sidecarset("ss", containers=[{"name": "c", "image": "c:1",
                                       "resourcesPolicy": _policy("sum", "", {"cpu": "cpu"}, None)}])
    assert [str(e) for e in validate_sidecarset(ss)] == [
        "spec[0].resourcesPolicy.targetContainersNameRegex: Required value: invalid empty regex"]


# --- shareVolumeDevicePolicy -------------------------------------------------------------------------

def test_share_volume_device_policy_enabled() -> None:
    """The app containers' volumeDevices are shared, except device paths the sidecar already uses
    (its own devices and mounts); injected containers' devices are not shared."""
    p = pod(containers=[
        {"name": "app", "image": "a:1", "volumeDevices": [{"name": "blk-a", "devicePath": "/dev/a"},
                                                          {"name": "blk-b", "devicePath": "/dev/b"},
                                                          {"name": "blk-c", "devicePath": "/mnt/c"}]},
        {"name": "other", "image": "o:1", "env": [{"name": "IS_INJECTED", "value": "true"}],
         "volumeDevices": [{"name": "blk-x", "devicePath": "/dev/x"}]},
    ])
    out = _inject(p, {"name": "sidecar1", "image": "s:1", "shareVolumeDevicePolicy": {"type": "enabled"},
                      "volumeDevices": [{"name": "own", "devicePath": "/dev/b"}],
                      "volumeMounts": [{"name": "vol", "mountPath": "/mnt/c"}]})
    sidecar = next(c for c in out["spec"]["containers"] if c["name"] == "sidecar1")
    assert sidecar["volumeDevices"] == [{"name": "own", "devicePath": "/dev/b"},
                                        {"name": "blk-a", "devicePath": "/dev/a"}]
    assert "shareVolumeDevicePolicy" not in sidecar


@pytest.mark.parametrize("policy", [None, {"type": "disabled"}])
def test_share_volume_device_policy_off(policy: dict[str, str] | None) -> None:
    p = pod(containers=[{"name": "app", "image": "a:1", "volumeDevices": [{"name": "blk", "devicePath": "/dev/a"}]}])
    sidecar: dict[str, Any] = {"name": "sidecar1", "image": "s:1"}
    if policy is not None:
        sidecar["shareVolumeDevicePolicy"] = policy
    out = _inject(p, sidecar)
    assert names(out["spec"]["containers"]) == ["sidecar1", "app"]
    assert "volumeDevices" not in out["spec"]["containers"][0]
