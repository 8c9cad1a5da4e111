"""The sim's pure placement rules (toleration matching, node selector terms, NoExecute delays), the
Job printer cells and the node flags of `python -m sim`."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from sim.cli import parse_labels, parse_taints
from sim.job_api import completions_cell
from sim.node_lifecycle import eviction_delay
from sim.placement import filter_reason, term_matches, tolerates

TAINT = {"key": "k", "value": "v", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "ok"),
    [
        pytest.param({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True, id="equal"),
        pytest.param({"key": "k", "value": "v"}, True, id="no-operator-means-equal-any-effect"),
        pytest.param({"key": "k", "value": "w"}, False, id="other-value"),
        pytest.param({"key": "k", "operator": "Exists"}, True, id="exists-any-value"),
        pytest.param({"operator": "Exists"}, True, id="exists-without-key-tolerates-all"),
        pytest.param({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False, id="other-effect"),
        pytest.param({"key": "j", "operator": "Exists"}, False, id="other-key"),
        pytest.param({"key": "k", "operator": "Bogus"}, False, id="unknown-operator"),
    ],
)
def test_toleration_matching(toleration: dict[str, Any], ok: bool) -> None:
    assert tolerates(toleration, TAINT) is ok


def node(name: str = "n1", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"pods": "2"}},
    }


@pytest.mark.parametrize(
    ("term", "ok"),
    [
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, True, id="name-in"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}, False, id="name-notin"),
        pytest.param({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, True, id="label-in"),
        pytest.param({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, False, id="label-doesnotexist"),
        pytest.param({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}, True, id="gt"),
        pytest.param({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}, False, id="lt"),
        pytest.param(
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}],
             "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},
            False, id="expressions-and-fields-all-hold",
        ),
        pytest.param({}, False, id="empty-term-matches-nothing"),
    ],
)
def test_node_selector_terms(term: dict[str, Any], ok: bool) -> None:
    assert term_matches(term, node(labels={"zone": "a", "cores": "8"})) is ok


@pytest.mark.parametrize(
    ("pod_spec", "node_obj", "pods", "reason"),
    [
        pytest.param({}, node(), 0, None, id="fits"),
        pytest.param({}, node(), 2, "Too many pods", id="full"),
        pytest.param({}, node(unschedulable=True), 0, "node(s) were unschedulable", id="cordoned"),
        pytest.param(
            {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]},
            node(unschedulable=True), 0, None, id="cordoned-tolerated",
        ),
        pytest.param({"nodeSelector": {"zone": "b"}}, node(labels={"zone": "a"}), 0,
                     "node(s) didn't match Pod's node affinity", id="selector"),
        pytest.param({}, node(taints=[TAINT]), 0, "node(s) had taint {k: v}, that the pod didn't tolerate",
                     id="no-schedule"),
        pytest.param({}, node(taints=[dict(TAINT, effect="NoExecute")]), 0,
                     "node(s) had taint {k: v}, that the pod didn't tolerate", id="no-execute"),
        pytest.param({}, node(taints=[dict(TAINT, effect="PreferNoSchedule")]), 0, None, id="prefer-no-schedule"),
    ],
)
def test_filter_reason(pod_spec: dict[str, Any], node_obj: dict[str, Any], pods: int, reason: str | None) -> None:
    assert filter_reason({"spec": pod_spec}, node_obj, pods) == reason


@pytest.mark.parametrize(
    ("tolerations", "delay"),
    [
        pytest.param([], 0.0, id="untolerated-now"),
        pytest.param([{"key": "k", "operator": "Exists"}], None, id="tolerated-forever"),
        pytest.param([{"key": "k", "operator": "Exists", "tolerationSeconds": 30}], 30.0, id="tolerated-for-30s"),
        pytest.param(
            [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}, {"operator": "Exists"}],
            30.0, id="the-first-matching-toleration-counts",
        ),
        pytest.param(
            [{"operator": "Exists"}, {"key": "k", "operator": "Exists", "tolerationSeconds": 30}],
            None, id="first-without-seconds",
        ),
        pytest.param([{"key": "k", "operator": "Exists", "tolerationSeconds": 0}], 0.0, id="zero-seconds-now"),
        pytest.param([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], 0.0, id="wrong-effect"),
    ],
)
def test_no_execute_eviction_delay(tolerations: list[dict[str, Any]], delay: float | None) -> None:
    taints = [{"key": "k", "effect": "NoExecute"}, {"key": "other", "effect": "NoSchedule"}]
    assert eviction_delay({"spec": {"tolerations": tolerations}}, taints) == delay


@pytest.mark.parametrize(
    ("spec", "succeeded", "cell"),
    [
        pytest.param({"completions": 3, "parallelism": 2}, 1, "1/3", id="completions"),
        pytest.param({"parallelism": 1}, 0, "0/1", id="no-completions"),
        pytest.param({"parallelism": 4}, 2, "2/1 of 4", id="work-queue"),
    ],
)
def test_kubectl_completions_cell(spec: dict[str, Any], succeeded: int, cell: str) -> None:
    assert completions_cell({"spec": spec, "status": {"succeeded": succeeded}}) == cell


def test_node_flags() -> None:
    assert parse_labels("a=1,b=") == {"a": "1", "b": ""}
    assert parse_taints("k=v:NoSchedule,x:NoExecute") == [
        {"key": "k", "value": "v", "effect": "NoSchedule"},
        {"key": "x", "effect": "NoExecute"},
    ]
    with pytest.raises(argparse.ArgumentTypeError, match="--node-taints: 'k=v' is not key"):
        parse_taints("k=v")
    with pytest.raises(argparse.ArgumentTypeError, match="Effect one of"):
        parse_taints("k=v:Sometimes")
    with pytest.raises(argparse.ArgumentTypeError, match="--node-labels: 'a' is not key=value"):
        parse_labels("a")
