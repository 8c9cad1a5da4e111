"""Update order (`SortUpdateIndexes`, `scatterSort`) and scale-in order (`choosePodsToDelete`), with Kruise's own test vectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet, UpdatePriorityStrategy, UpdateScatterTerm
from schemas.constants import ANNOTATION_DELETION_COST, LABEL_LIFECYCLE_STATE, STATE_PREPARING_UPDATE
from schemas.kube import ContainerStatus, ObjectMeta, Pod, PodCondition, PodSpecView, PodStatusView
from services.planner.kit.sort import (
    active_pods_key,
    deletion_cost,
    deletion_key,
    priority_sort,
    same_node_ranks,
    scatter_sort,
    sort_active_pods,
    sort_scale_in,
    sort_update_candidates,
    spread_constraint_ranks,
)
from services.planner.kit.timeutil import format_time

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
THEN = NOW - timedelta(days=30)


def mk(
    name: str,
    node: str = "node",
    phase: str = "Running",
    ready: bool = True,
    ready_since: datetime | None = None,
    created: datetime | None = None,
    restarts: int = 0,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    uid: str | None = None,
) -> Pod:
    conditions = []
    if ready:
        conditions.append(
            PodCondition(
                type="Ready",
                status="True",
                last_transition_time=format_time(ready_since) if ready_since else None,
            )
        )
    return Pod(
        metadata=ObjectMeta(
            name=name,
            uid=uid or name,
            labels=labels or {},
            annotations=annotations or {},
            creation_timestamp=format_time(created) if created else None,
        ),
        spec=PodSpecView(node_name=node),
        status=PodStatusView(
            phase=phase,
            conditions=conditions,
            container_statuses=[ContainerStatus(name="c", restart_count=restarts)],
        ),
    )


def names(pods: list[Pod]) -> list[str]:
    return [p.metadata.name for p in pods]


def make_cs(
    update_strategy: dict[str, Any] | None = None, template_spec: dict[str, Any] | None = None
) -> CloneSet:
    return msgspec.convert(
        {
            "metadata": {"name": "cs", "namespace": "default", "uid": "u"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": template_spec or {"containers": []}},
                "updateStrategy": update_strategy or {},
            },
        },
        type=CloneSet,
    )


# ----------------------------------------------------------------------------- ActivePods order

UNSCHEDULED = mk("unscheduled", node="", phase="Pending", ready=False)
PENDING = mk("pending", phase="Pending", ready=False)
UNKNOWN = mk("unknown-phase", phase="Unknown", ready=False)
NOT_READY = mk("not-ready", ready=False)
READY_NO_LTT = mk("ready-no-last-transition-time")
READY_NOW = mk("ready-now", ready_since=NOW, created=NOW)
READY_THEN = mk("ready-then", ready_since=THEN, created=THEN)
READY_HIGH_RESTARTS = mk("ready-high-restarts", restarts=9001, ready_since=NOW, created=NOW)
READY_NOW_CREATED_THEN = mk("ready-now-created-then", ready_since=NOW, created=THEN)
LOW_COST = mk(
    "low-deletion-cost", ready_since=NOW, created=THEN, annotations={ANNOTATION_DELETION_COST: "10"}
)
HIGH_COST = mk(
    "high-deletion-cost", ready_since=NOW, created=THEN, annotations={ANNOTATION_DELETION_COST: "100"}
)

# Kubernetes/Kruise TestSortingActivePods inequality table: lesser sorts first.
INEQUALITIES = [
    (UNSCHEDULED, PENDING),
    (PENDING, UNKNOWN),
    (UNKNOWN, NOT_READY),
    (NOT_READY, READY_NO_LTT),
    (READY_NO_LTT, READY_NOW),
    (READY_NOW, READY_THEN),
    (READY_HIGH_RESTARTS, READY_NOW),
    (READY_NOW, READY_NOW_CREATED_THEN),
]


@pytest.mark.parametrize(
    ("lesser", "greater"), INEQUALITIES, ids=[f"{a.metadata.name}<{b.metadata.name}" for a, b in INEQUALITIES]
)
def test_active_pods_order(lesser: Pod, greater: Pod) -> None:
    assert active_pods_key(lesser) < active_pods_key(greater)
    assert deletion_key(lesser) < deletion_key(greater)
    assert names(sort_active_pods([greater, lesser])) == [lesser.metadata.name, greater.metadata.name]


def test_deletion_cost_only_in_scale_in_order() -> None:
    assert deletion_key(LOW_COST) < deletion_key(HIGH_COST)
    assert active_pods_key(LOW_COST) == active_pods_key(HIGH_COST)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", 10),
        ("-5", -5),
        ("0", 0),
        ("+10", 0),
        ("007", 0),
        ("-007", -7),
        ("", 0),
        ("x", 0),
        ("2147483648", 0),
        ("-2147483648", -2147483648),
    ],
)
def test_deletion_cost_parsing(value: str, expected: int) -> None:
    assert deletion_cost(mk("p", annotations={ANNOTATION_DELETION_COST: value})) == expected


# ----------------------------------------------------------------------------- priority (F7, F8)


def labelled(*labels: dict[str, str]) -> list[Pod]:
    return [mk(str(i), labels=lab) for i, lab in enumerate(labels)]


def test_f7_weight_priority_keeps_original_order_for_unmatched() -> None:
    strategy = msgspec.convert(
        {
            "weightPriority": [
                {"weight": 100, "matchSelector": {"matchLabels": {"foo": "bar"}}},
                {"weight": 90, "matchSelector": {"matchLabels": {"hello": "world"}}},
            ]
        },
        type=UpdatePriorityStrategy,
    )
    pods = labelled({"hello": "world"}, {}, {"foo": "bar"}, {})
    assert names(priority_sort(pods, strategy)) == ["2", "0", "1", "3"]


def test_f8_order_priority_compare() -> None:
    strategy = msgspec.convert(
        {"orderPriority": [{"orderedKey": "key1"}, {"orderedKey": "key2"}]}, type=UpdatePriorityStrategy
    )
    assert names(priority_sort(labelled({"key1": "o-5"}, {"key1": "o-10"}), strategy)) == [
        "1",
        "0",
    ]  # larger first
    assert names(priority_sort(labelled({"key2": "o-20"}, {"key1": "o-10"}), strategy)) == [
        "1",
        "0",
    ]  # key1 level
    # QUIRK: pods without any ordered key come first; values without digits count as 0.
    pods = labelled({"key1": "o-1"}, {"x": "y"}, {"key1": "abc"}, {"key2": "9"})
    assert names(priority_sort(pods, strategy)) == ["1", "0", "2", "3"]


# ----------------------------------------------------------------------------- scatter (`scatterSort`)

TERM = [UpdateScatterTerm(key="labelA", value="AAA")]

# Kruise TestScatterPodsByRule: all pods are candidates; "A" = labelA=AAA.
SCATTER_RULE_VECTORS = [
    ([""], [0]),
    (["A"], [0]),
    (["A", ""], [0, 1]),
    (["", "", "", "", "A", "A"], [4, 0, 1, 2, 3, 5]),
    (["", "", "", "A", "A", "A"], [3, 0, 1, 4, 2, 5]),
    (["", "", "", "A", "", "", "A"], [3, 0, 1, 2, 4, 5, 6]),
    (["", "", "", "", "", "", "A", "A", "A"], [6, 0, 1, 2, 7, 3, 4, 5, 8]),
    (["", "", "A", "A", "A", "A"], [2, 3, 0, 4, 1, 5]),
    (["", "", "A", "", "A", "A", "A", "A", "A"], [2, 4, 0, 5, 6, 1, 7, 3, 8]),
    (["", "A", "", "A", "", "", "A", "A", "A"], [1, 0, 3, 2, 6, 4, 7, 5, 8]),
]


@pytest.mark.parametrize(
    ("labels", "expected"), SCATTER_RULE_VECTORS, ids=[str(v[0]) for v in SCATTER_RULE_VECTORS]
)
def test_scatter_by_rule_vectors(labels: list[str], expected: list[int]) -> None:
    pods = labelled(*({"labelA": "AAA"} if lab == "A" else {} for lab in labels))
    assert [int(n) for n in names(scatter_sort(pods, pods, TERM))] == expected


# Kruise TestSort: (pod labels, strategy, expected); candidates are the first len(expected) pods.
SORT_VECTORS: list[tuple[str, list[dict[str, str]], list[tuple[str, str]], list[int]]] = [
    (
        "one pod one label",
        [{}, {}, {}, {}, {"labelA": "AAA"}, {"labelA": "AAA"}],
        [("labelA", "AAA")],
        [4, 0, 1, 2, 3, 5],
    ),
    (
        "one pod more labels",
        [
            {},
            {},
            {},
            {},
            {"sdfb": "eee"},
            {"dsf": "same"},
            {"labelB": "BBB"},
            {"labelA": "AAA"},
            {"labelA": "AAA"},
            {"labelA": "AAA", "labelB": "BBB"},
        ],
        [("labelB", "BBB")],
        [6, 0, 1, 2, 3, 4, 5, 7, 8, 9],
    ),
    (
        "2 dimensions + one pod one label",
        [{"labelB": "BBB"}, {"labelB": "BBB"}, {}, {}, {"labelA": "AAA"}, {"labelA": "AAA"}],
        [("labelA", "AAA"), ("labelB", "BBB")],
        [0, 4, 2, 3, 5, 1],
    ),
    (
        "2 dimensions + sequence B + A",
        [
            {},
            {},
            {},
            {},
            {"sdfb": "eee"},
            {"dsf": "same"},
            {"labelB": "BBB"},
            {"labelA": "AAA"},
            {"labelA": "AAA"},
            {"labelB": "BBB"},
        ],
        [("labelA", "AAA"), ("labelB", "BBB")],
        [6, 7, 0, 1, 2, 3, 4, 5, 8, 9],
    ),
    (
        "3 dimensions + one pod one label",
        [
            {},
            {"labelA": "AAA"},
            {"labelA": "AAA"},
            {"labelB": "BBB"},
            {"labelB": "BBB"},
            {"labelC": "CCC"},
            {"labelC": "CCC"},
            {"labelC": "CCC"},
            {"labelC": "CCC"},
            {"labelC": "CCC"},
        ],
        [("labelA", "AAA"), ("labelB", "BBB"), ("labelC", "CCC")],
        [3, 1, 5, 0, 6, 7, 8, 9, 2, 4],
    ),
    (
        "continuous sort 1",
        [{}, {}, {}, {}, {"labelA": "AAA"}, {"labelA": "AAA"}, {"labelA": "AAA"}],
        [("labelA", "AAA")],
        [0, 1, 4, 2, 3, 5],
    ),
    (
        "continuous sort 2",
        [{"labelA": "AAA"}, {"labelA": "AAA"}, {}, {}, {}, {}, {}, {}, {}, {"labelA": "AAA"}],
        [("labelA", "AAA")],
        [2, 0, 3, 4, 5, 6, 1],
    ),
]


@pytest.mark.parametrize(
    ("desc", "labels", "terms", "expected"), SORT_VECTORS, ids=[v[0] for v in SORT_VECTORS]
)
def test_scatter_sort_vectors(
    desc: str, labels: list[dict[str, str]], terms: list[tuple[str, str]], expected: list[int]
) -> None:
    all_pods = labelled(*labels)
    candidates = all_pods[: len(expected)]
    strategy = [UpdateScatterTerm(key=k, value=v) for k, v in terms]
    assert [int(n) for n in names(scatter_sort(candidates, all_pods, strategy))] == expected


def test_sort_update_candidates_pipeline() -> None:
    cs = make_cs(
        {
            "priorityStrategy": {
                "weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"p": "1"}}}]
            }
        }
    )
    a = mk("a", ready_since=THEN, created=THEN, labels={"p": "1"})
    b = mk("b", ready=False)
    c = mk("c", ready_since=THEN, created=THEN, labels={LABEL_LIFECYCLE_STATE: STATE_PREPARING_UPDATE})
    d = mk("d", node="", phase="Pending", ready=False)
    # ActivePods: d (unscheduled), b (not ready), a, c; weight moves a first; PreparingUpdate c to the very front.
    assert names(sort_update_candidates([a, b, c, d], cs.spec.update_strategy, [a, b, c, d], NOW)) == ["c", "a", "d", "b"]
    assert names(sort_update_candidates([a, b, c, d], make_cs().spec.update_strategy, [a, b, c, d], NOW)) == ["c", "d", "b", "a"]


# ----------------------------------------------------------------------------- scale-in rankers (F6)


def test_f6_same_node_ranker() -> None:
    nodes = {0: "a", 1: "", 2: "", 3: "b", 4: "a", 5: "c", 6: "b", 7: "d", 8: "d", 9: "d", 10: "a"}
    pods = [Pod(metadata=ObjectMeta(uid=str(i)), spec=PodSpecView(node_name=n)) for i, n in nodes.items()]
    assert same_node_ranks(pods) == {"0": 2.0, "4": 1.0, "3": 1.0, "7": 2.0, "8": 1.0}


SPREAD_NODES = {
    "a": {},
    **{
        n: {"kubernetes.io/hostname": n, "failure-domain.beta.kubernetes.io/zone": z}
        for n, z in [
            ("b", "z1"),
            ("c", "z1"),
            ("d", "z1"),
            ("e", "z2"),
            ("f", "z2"),
            ("g", "z2"),
            ("h", "z3"),
            ("i", "z3"),
        ]
    },
}


def spread_pods() -> list[Pod]:
    out = []
    for node, count in [("a", 2), ("b", 2), ("c", 3), ("d", 5), ("e", 5), ("f", 3), ("i", 5)]:
        out += [
            Pod(metadata=ObjectMeta(uid=f"{node}-{i}"), spec=PodSpecView(node_name=node))
            for i in range(count)
        ]
    return out


def ranked_order(ranks: dict[str, float], pods: list[Pod]) -> list[str]:
    ids = [p.metadata.uid for p in pods if ranks.get(p.metadata.uid, 0) > 0]
    return sorted(ids, key=lambda u: -ranks[u])


def test_spread_constraints_ranker_zone() -> None:
    pods = spread_pods()
    ranks = spread_constraint_ranks(pods, ["failure-domain.beta.kubernetes.io/zone"], SPREAD_NODES)
    assert ranked_order(ranks, pods) == [
        "d-0",
        "d-1",
        "c-0",
        "e-0",
        "d-2",
        "e-1",
        "b-0",
        "e-2",
        "c-1",
        "f-0",
        "i-0",
        "d-3",
        "e-3",
        "i-1",
        "b-1",
        "f-1",
        "i-2",
        "c-2",
        "e-4",
        "i-3",
        "d-4",
        "f-2",
        "i-4",
    ]


def test_spread_constraints_ranker_zone_and_host() -> None:
    pods = spread_pods()
    ranks = spread_constraint_ranks(
        pods, ["failure-domain.beta.kubernetes.io/zone", "kubernetes.io/hostname"], SPREAD_NODES
    )
    assert ranked_order(ranks, pods) == [
        "d-0",
        "e-0",
        "d-1",
        "e-1",
        "c-0",
        "i-0",
        "d-2",
        "e-2",
        "i-1",
        "f-0",
        "b-0",
        "c-1",
        "i-2",
        "d-3",
        "e-3",
        "f-1",
        "i-3",
        "b-1",
        "c-2",
        "e-4",
        "d-4",
        "f-2",
        "i-4",
    ]


# ----------------------------------------------------------------------------- scale-in order (`choosePodsToDelete`)


def test_scale_in_order_criteria() -> None:
    cs = make_cs()
    available = mk("available", node="n1", ready_since=THEN, created=THEN)
    preparing = mk(
        "preparing-normal",
        node="n2",
        ready_since=THEN,
        created=THEN,
        labels={LABEL_LIFECYCLE_STATE: "PreparingNormal"},
    )  # ready but not available
    unscheduled = mk("unscheduled", node="", phase="Pending", ready=False)
    cheap = mk(
        "cheap", node="n3", ready_since=THEN, created=THEN, annotations={ANNOTATION_DELETION_COST: "-1"}
    )
    pods = [available, preparing, unscheduled, cheap]
    assert names(sort_scale_in(pods, pods, cs.spec.template.spec, NOW, 0)) == [
        "unscheduled",
        "preparing-normal",
        "cheap",
        "available",
    ]


def test_scale_in_min_ready_seconds_makes_recent_pods_unavailable() -> None:
    cs = make_cs()
    old = mk("old", node="n1", ready_since=THEN, created=THEN)
    fresh = mk(
        "fresh", node="n2", ready_since=NOW - timedelta(seconds=5), created=NOW - timedelta(seconds=10)
    )
    assert names(sort_scale_in([old, fresh], [], cs.spec.template.spec, NOW, 60)) == ["fresh", "old"]
    # created earlier but became ready later -> still deleted first without minReadySeconds (more recently ready)
    assert names(sort_scale_in([old, fresh], [], cs.spec.template.spec, NOW, 0)) == ["fresh", "old"]


def test_scale_in_prefers_crowded_nodes() -> None:
    cs = make_cs()
    pods = [
        mk(f"p{i}", node=n, ready_since=THEN, created=THEN) for i, n in enumerate(["x", "y", "y", "y", "z"])
    ]
    order = names(sort_scale_in(pods, pods, cs.spec.template.spec, NOW, 0))
    assert order[:2] == ["p1", "p2"]  # ranks 2 and 1 on crowded node y


def test_scale_in_uses_spread_ranker_with_topology_constraints() -> None:
    cs = make_cs(
        template_spec={
            "containers": [],
            "topologySpreadConstraints": [
                {"topologyKey": "kubernetes.io/hostname", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
            ],
        }
    )
    pods = [mk(f"p{i}", node=n, ready_since=THEN, created=THEN) for i, n in enumerate(["x", "y", "y", "z"])]
    order = names(sort_scale_in(pods, pods, cs.spec.template.spec, NOW, 0))
    assert order[0] == "p1"  # y has 2 pods -> its first pod ranks 2*ln(5), higher than the singletons' ln(5)
    zone_cs = make_cs(
        template_spec={"containers": [], "topologySpreadConstraints": [{"topologyKey": "zone"}]}
    )
    # without node labels nothing can be ranked by zone: pure ActivePodsWithRanks order (input order on ties)
    assert names(sort_scale_in(pods, pods, zone_cs.spec.template.spec, NOW, 0)) == ["p0", "p1", "p2", "p3"]
    nodes = {"x": {"zone": "1"}, "y": {"zone": "2"}, "z": {"zone": "2"}}
    assert names(sort_scale_in(pods, pods, zone_cs.spec.template.spec, NOW, 0, nodes=nodes))[0] == "p1"
