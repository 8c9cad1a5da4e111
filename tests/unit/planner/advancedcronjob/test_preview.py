"""`kruisebus plan ACJ.yaml --now T`: next runs in UTC and the schedule's zone, what the pass does, when it looks again."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.dryrun import run
from tests.unit.planner.advancedcronjob.helpers import acj_dict

ROOT = Path(__file__).resolve().parents[4]


def test_the_shanghai_example() -> None:
    code, out = run(str(ROOT / "examples" / "advancedcronjob-shanghai.yaml"), now="2026-03-08T18:30:04Z",
                    feature_gates=None)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["schedule"] == "TZ=Asia/Shanghai 30 2 * * *" and doc["timeZone"] == "Asia/Shanghai"
    assert doc["nextRuns"][0] == {"utc": "2026-03-09T18:30:00Z", "zone": "2026-03-10T02:30:00+08:00"}
    assert len(doc["nextRuns"]) == 5
    assert doc["thisPass"]["create"] == "nightly-report-1772994600"
    assert doc["thisPass"]["slot"] == {"utc": "2026-03-08T18:30:00Z", "zone": "2026-03-09T02:30:00+08:00"}
    assert doc["looksAgain"] == {"after_seconds": 86396.0, "at": "2026-03-09T18:30:00Z"}
    assert [c["verb"] for c in doc["commands"]] == ["status", "child-create"]


def test_forbid_skip_and_history_with_children_in_the_file(tmp_path: Path) -> None:
    a = acj_dict("0 * * * *", policy="Forbid", succ=1)
    owner = [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob", "name": "acj", "uid": a["metadata"]["uid"],
              "controller": True}]

    def child(name: str, slot: str, state: str | None, start: str) -> dict[str, object]:
        status: dict[str, object] = {"startTime": start}
        if state:
            status["conditions"] = [{"type": state, "status": "True"}]
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": name, "namespace": "default", "uid": f"u-{name}", "ownerReferences": owner,
            "annotations": {"apps.kruise.io/scheduled-at": slot}}, "status": status}

    docs = [a, child("acj-1", "2026-06-01T08:00:00Z", "Complete", "2026-06-01T08:00:01Z"),
            child("acj-2", "2026-06-01T09:00:00Z", "Complete", "2026-06-01T09:00:01Z"),
            child("acj-3", "2026-06-01T10:00:00Z", None, "2026-06-01T10:00:01Z")]
    path = tmp_path / "acj.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, out = run(str(path), now="2026-06-01T11:00:02Z", feature_gates=None)
    doc = json.loads(out)
    assert code == 0
    assert doc["thisPass"]["create"] is None and doc["thisPass"]["skip"].startswith("concurrency policy Forbid")
    assert doc["thisPass"]["delete"] == ["acj-1"]
    assert doc["looksAgain"]["at"] == "2026-06-01T12:00:00Z"


def test_an_acj_with_its_broadcastjob_children_previews_the_acj(tmp_path: Path) -> None:
    a = acj_dict("0 * * * *", broadcast=True)
    bj = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "BroadcastJob", "metadata": {
        "name": "acj-1780308000", "namespace": "default", "uid": "b1",
        "annotations": {"apps.kruise.io/scheduled-at": "2026-06-01T10:00:00Z"},
        "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob", "name": "acj",
                             "uid": a["metadata"]["uid"], "controller": True}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}
    path = tmp_path / "acj.yaml"
    path.write_text(yaml.safe_dump_all([a, bj]))
    code, out = run(str(path), now="2026-06-01T10:30:00Z", feature_gates=None)
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "AdvancedCronJob"
    assert [r["name"] for r in doc["status"]["active"]] == ["acj-1780308000"]


def test_an_invalid_acj_exits_1_naming_the_field(tmp_path: Path) -> None:
    a = acj_dict("0 0 * * 7")
    path = tmp_path / "acj.yaml"
    path.write_text(yaml.safe_dump(a))
    code, out = run(str(path), now="2026-06-01T10:30:00Z", feature_gates=None)
    assert code == 1 and json.loads(out)["errors"][0]["field"] == "spec.schedule"


def test_the_planner_zone_applies_to_schedules_without_one(tmp_path: Path) -> None:
    """`--time-zone` (planner and plan): `0 10 * * *` without timeZone runs at 10:00 in that zone."""
    import pytest

    from services.planner.workloads import with_time_zone

    a = acj_dict("0 10 * * *", created="2022-09-05T00:00:00Z")
    path = tmp_path / "acj.yaml"
    path.write_text(yaml.safe_dump(a))
    code, out = run(str(path), now="2022-09-05T09:01:00Z", feature_gates=None,
                    registry=with_time_zone("Asia/Shanghai"))
    doc = json.loads(out)
    assert code == 0 and doc["timeZone"] == "Asia/Shanghai"
    assert doc["nextRuns"][0] == {"utc": "2022-09-06T02:00:00Z", "zone": "2022-09-06T10:00:00+08:00"}
    assert json.loads(run(str(path), now="2022-09-05T09:01:00Z", feature_gates=None)[1])["nextRuns"][0]["utc"] == \
        "2022-09-05T10:00:00Z"
    for bad in ("Local", "Mars/Base"):
        with pytest.raises(ValueError):
            with_time_zone(bad)
