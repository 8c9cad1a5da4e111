"""Kruise's TestCalculateDiffsWithExpectation (`pkg/controller/cloneset/sync/cloneset_sync_utils_test.go`), one test id per table row/step."""

from __future__ import annotations

from typing import Any

import pytest

from services.planner.cloneset.calc import calculate_diffs
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from tests.unit.planner.helpers import NOW, cs_dict, cs_obj, pod_dict, pod_obj

ROLLBACK = FeatureGates(clone_set_partition_rollback=True)
OLD, NEW = "demo-old", "demo-new"


def pods(spec: str) -> list[dict[str, Any]]:
    """``"4oR 1oR+SD 1nU 1nU[Updating]"``: count, o/n revision, R/U readiness, +SD, [State]."""
    out: list[dict[str, Any]] = []
    cs = cs_dict()
    for token in spec.split():
        count = int(token[0])
        rev = OLD if token[1] == "o" else NEW
        ready = token[2] == "R"
        sd = "+SD" in token
        state = token[token.index("[") + 1 : token.index("]")] if "[" in token else "Normal"
        for _ in range(count):
            i = len(out)
            if ready:
                out.append(pod_dict(cs, rev, i, specified_delete=sd, state=state))
            else:
                out.append(
                    pod_dict(
                        cs, rev, i, specified_delete=sd, state=state, phase="Pending", inplace_ready=None
                    )
                )
    return out


ROWS: list[tuple[str, dict[str, Any], str, dict[str, int]]] = [
    (
        "A1",
        dict(replicas=5, partition=0, max_unavailable=1, max_surge=0),
        "",
        {"scale_up_num": 5, "scale_up_limit": 5},
    ),
    ("A2-step1", dict(replicas=5, max_unavailable=1), "4nR 1nR+SD", {"delete_ready_limit": 1}),
    ("A2-step2", dict(replicas=5, max_unavailable=1), "4nR", {"scale_up_num": 1, "scale_up_limit": 1}),
    ("A3-step1", dict(replicas=5, max_unavailable=1), "3nR 2nR+SD", {"delete_ready_limit": 1}),
    ("A3-step3", dict(replicas=5, max_unavailable=1), "1nR+SD 3nR 1nU", {}),
    ("A4", dict(replicas=4, max_unavailable=1), "2nU+SD 3nR", {"delete_ready_limit": 2}),
    (
        "A5-step1",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=0),
        "5oR",
        {"update_num": 2, "update_max_unavailable": 1},
    ),
    (
        "A5-step2",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=0),
        "1nR 4oR",
        {"update_num": 1, "update_max_unavailable": 1},
    ),
    ("A5-step3", dict(replicas=5, partition=3, max_unavailable=1, max_surge=0), "2nR 3oR", {}),
    (
        "A6-step1",
        dict(replicas=5, partition=4, max_unavailable=2),
        "4nR 1oR",
        {"update_num": -3, "update_max_unavailable": 2},
    ),
    (
        "A6-step2",
        dict(replicas=5, partition=4, max_unavailable=2),
        "2nR 3oR",
        {"update_num": -1, "update_max_unavailable": 2},
    ),
    (
        "A8-step1",
        dict(replicas=5, partition=0, max_unavailable=0, max_surge=1),
        "4nR 1nR+SD",
        {"scale_up_num": 1, "use_surge": 1, "scale_up_limit": 1},
    ),
    (
        "A8-step2",
        dict(replicas=5, partition=0, max_unavailable=0, max_surge=1),
        "4nR 1nR+SD 1nU",
        {"use_surge": 1},
    ),
    (
        "A8-step3",
        dict(replicas=5, partition=0, max_unavailable=0, max_surge=1),
        "4nR 1nR+SD 1nR",
        {"delete_ready_limit": 1, "use_surge": 1},
    ),
    ("A8-step4", dict(replicas=5, partition=0, max_unavailable=0, max_surge=1), "5nR", {}),
    (
        "A9",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "5oR",
        {
            "scale_up_num": 1,
            "use_surge": 1,
            "update_num": 2,
            "update_max_unavailable": 1,
            "scale_up_limit": 1,
        },
    ),
    (
        "A10",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "5oR 1nU",
        {"use_surge": 1, "update_num": 1, "update_max_unavailable": 2},
    ),
    (
        "A11",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "4oR 1nU[Updating] 1nU",
        {"scale_down_num": 1, "scale_down_num_old_revision": 1},
    ),
    (
        "A12",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "4oR 1nR 1nU",
        {"scale_down_num": 1, "scale_down_num_old_revision": 1, "delete_ready_limit": 1},
    ),
    (
        "A13",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "4oR 1oR+SD 1nU",
        {
            "use_surge": 1,
            "use_surge_old_revision": 1,
            "delete_ready_limit": 1,
            "update_num": 1,
            "update_max_unavailable": 2,
        },
    ),
    (
        "A14-step5",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "4oR 2nU",
        {"scale_down_num": 1, "scale_down_num_old_revision": 1},
    ),
    (
        "A14-step6",
        dict(replicas=5, partition=3, max_unavailable=1, max_surge=1),
        "4oR 1nR 1nU",
        {"scale_down_num": 1, "scale_down_num_old_revision": 1, "delete_ready_limit": 1},
    ),
]


@pytest.mark.parametrize(("spec", "pod_spec", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_calculate_diffs(spec: dict[str, Any], pod_spec: str, expected: dict[str, int]) -> None:
    cs = cs_obj(cs_dict(**spec))
    view = [pod_obj(p) for p in pods(pod_spec)] if pod_spec else []
    diffs = calculate_diffs(cs, view, OLD, NEW, now=NOW, gates=ROLLBACK)
    assert diffs.nonzero() == expected


def test_A7_no_rollback_without_gate() -> None:
    cs = cs_obj(cs_dict(replicas=5, partition=4, max_unavailable=1))
    view = [pod_obj(p) for p in pods("1oR 4nR")]
    assert calculate_diffs(cs, view, OLD, NEW, now=NOW, gates=DEFAULT_GATES).nonzero() == {}
    # and with the gate the same state rolls 3 pods back
    assert calculate_diffs(cs, view, OLD, NEW, now=NOW, gates=ROLLBACK).update_num == -3


def test_consistent_revisions_never_roll_back() -> None:
    cs = cs_obj(cs_dict(replicas=5, partition=4, max_unavailable=1))
    view = [pod_obj(p) for p in pods("5nR")]
    assert calculate_diffs(cs, view, NEW, NEW, now=NOW, gates=ROLLBACK).nonzero() == {}


def test_paused_forces_surge_zero_and_rounding_up() -> None:
    # ms "50%" of 5 -> 3 (ceil); paused -> 0, so mu "20%" rounds up to 1 instead of down to 1/0
    cs = cs_obj(cs_dict(replicas=3, max_unavailable="50%", max_surge="50%", paused=True))
    view = [pod_obj(p) for p in pods("3oR")]
    d = calculate_diffs(cs, view, OLD, NEW, now=NOW, gates=DEFAULT_GATES)
    assert d.use_surge == 0 and d.update_max_unavailable == 2  # ceil(1.5) = 2
    cs2 = cs_obj(cs_dict(replicas=3, max_unavailable="50%", max_surge="50%"))
    d2 = calculate_diffs(cs2, view, OLD, NEW, now=NOW, gates=DEFAULT_GATES)
    assert d2.update_max_unavailable == 1 + 3 - 3 and d2.use_surge == 2  # floor(1.5) = 1 with surge


def test_preparing_delete_counts_unavailable_and_exclusion_label() -> None:
    cs_d = cs_dict(replicas=3, max_unavailable=1)
    view = [pod_obj(p) for p in pods("3nR 1nR[PreparingDelete]")]
    d = calculate_diffs(cs_obj(cs_d), view, NEW, NEW, now=NOW, gates=DEFAULT_GATES)
    assert d.scale_down_num == 1
    cs_d["metadata"]["labels"] = {"apps.kruise.io/cloneset-scaling-exclude-preparing-delete": "true"}
    d = calculate_diffs(cs_obj(cs_d), view, NEW, NEW, now=NOW, gates=DEFAULT_GATES)
    assert d.scale_down_num == 0 and d.scale_up_num == 0
