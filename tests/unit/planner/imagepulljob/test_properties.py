"""Properties of a job driven to the end over simulated nodes and node agents: never more than
`parallelism` nodes pulling for the job at once, the counters always add up, a node never pulls more
than its attempts allow, every node ends succeeded or failed exactly once — whatever the pull outcomes
and their timing."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.imagepulljob import ImagePullJob
from schemas.jsonmerge import merge_patch
from schemas.messages import Command, PatchOp
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from services.planner.imagepulljob.job import JobView, plan_image_pull_job, tally
from services.planner.imagepulljob.nodeimage import plan_node_image
from services.planner.imagepulljob.targets import select_targets
from services.planner.kit.gates import parse_feature_gates
from services.planner.kit.timeutil import format_time
from tests.unit.planner.imagepulljob.builders import JOB_UID, NOW, job, node

GATES = parse_feature_gates("ImagePullJobGate=true")
PHASES = {"wait": "waiting", "pulling": "pulling", "ok": "succeeded", "fail": "failed"}


class World:
    """NodeImages and one job as the API server would hold them, and one agent per node: commands
    applied in order, stale ones refused; pulls answered with the next outcome."""

    def __init__(self, nodes: int, parallelism: int, backoff: int) -> None:
        self.nis: dict[str, dict[str, Any]] = {
            f"n{i:02d}": {
                "metadata": {"name": f"n{i:02d}", "uid": f"ni-{i}", "resourceVersion": "1"},
                "spec": {},
                "status": {},
            }
            for i in range(nodes)
        }
        self.job: dict[str, Any] = msgspec.to_builtins(
            job(parallelism=parallelism, pull_policy={"timeoutSeconds": 600, "backoffLimit": backoff})
        )
        self.rv = 1
        self.pending: dict[str, Command] = {}  # node -> the pull it was asked for, not answered yet
        self.results: dict[str, PullResult] = {}  # node -> its agent's latest report
        self.pulls: dict[str, int] = {}  # node -> pulls started

    def node_images(self) -> list[NodeImage]:
        return [msgspec.convert(v, NodeImage) for _, v in sorted(self.nis.items())]

    def the_job(self) -> ImagePullJob:
        return msgspec.convert(self.job, ImagePullJob)

    def apply(self, cmd: Command) -> None:
        if cmd.node:
            if cmd.id != (self.pending.get(cmd.node) or Command(id="", verb="", workload=cmd.workload)).id:
                self.pulls[cmd.node] = self.pulls.get(cmd.node, 0) + 1
            self.pending[cmd.node] = cmd
            return
        for op in cmd.ops:
            if not isinstance(op, PatchOp):
                continue
            assert isinstance(op.patch, dict)
            target = self.job if op.resource.plural == "imagepulljobs" else self.nis[op.name]
            guard = (op.patch.get("metadata") or {}).get("resourceVersion")
            if guard is not None and guard != target["metadata"].get("resourceVersion"):
                return  # stale: refused
            new = merge_patch(target, {k: v for k, v in op.patch.items() if k != "metadata"})
            self.rv += 1
            new["metadata"]["resourceVersion"] = str(self.rv)
            target.clear()
            target.update(new)

    def answer(self, node_name: str, outcome: str, now: Any) -> None:
        cmd = self.pending[node_name]
        op = cmd.node_ops[0]
        phase = PHASES[outcome]
        done = phase in ("succeeded", "failed")
        self.results[node_name] = msgspec.convert(
            {
                "metadata": {"name": node_name, "uid": f"{node_name}/{op.image}"},
                "node": node_name,
                "image": op.image,
                "version": op.version,
                "phase": phase,
                "command_id": cmd.id,
                "start_time": format_time(now),
                **({"completion_time": format_time(now)} if done else {}),
                **({"image_id": "nginx@sha256:1"} if phase == "succeeded" else {}),
                **({"message": "boom"} if phase == "failed" else {}),
            },
            PullResult,
        )
        if done:
            del self.pending[node_name]


def active_for_job(nis: list[NodeImage], j: ImagePullJob) -> int:
    """Targets whose tag the job owns and whose current version has not finished: pulling right now."""
    return len(tally(j, select_targets(j, nis)).pulling)


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.integers(min_value=0, max_value=10),
    parallelism=st.integers(min_value=1, max_value=4),
    backoff=st.integers(min_value=0, max_value=2),
    outcomes=st.lists(st.sampled_from(["wait", "pulling", "ok", "fail"]), max_size=60),
)
def test_parallelism_attempts_and_counters(
    nodes: int, parallelism: int, backoff: int, outcomes: list[str]
) -> None:
    w = World(nodes, parallelism, backoff)
    now = NOW
    step = 0
    jobs = {("default", "job"): JOB_UID}
    for _ in range(300):
        plan = plan_image_pull_job(
            JobView(job=w.the_job(), node_images=w.node_images()), now=now, gates=GATES
        )
        s = plan.status
        assert s.desired == nodes
        assert s.succeeded + s.failed + s.active <= s.desired
        assert s.failed_nodes == sorted(s.failed_nodes) and len(s.failed_nodes) == s.failed
        for cmd in plan.commands:
            w.apply(cmd)
        assert active_for_job(w.node_images(), w.the_job()) <= parallelism
        if w.the_job().status.completion_time is not None:
            break
        for ni in w.node_images():
            name = ni.metadata.name
            before = copy.deepcopy(w.nis[name]["status"])
            results = [w.results[name]] if name in w.results else []
            np = plan_node_image(node(name), ni, jobs, now, results)
            assert sum(c.verb == "nodeimage-status" for c in np.commands) <= 1  # one write per pass
            if results and not results[0].done:
                assert np.commands == []  # progress is never written
            for cmd in np.commands:
                w.apply(cmd)
            after = w.nis[name]["status"]
            if after != before:
                assert (
                    after["desired"]
                    == after["succeeded"] + after["failed"] + after["pulling"] + after["waiting"]
                )
        for name in sorted(w.pending):
            outcome = outcomes[step] if step < len(outcomes) else "ok"  # then every pull ends well
            step += 1
            w.answer(name, outcome, now)
        now += timedelta(seconds=5)
    final = w.the_job().status
    assert final.completion_time is not None
    assert final.succeeded + final.failed == nodes and final.active == 0
    for ni in w.node_images():
        t = ni.tag_status("nginx", "1.21")
        assert t is not None and t.version == 0 and t.completion_time is not None
        assert 1 <= w.pulls[ni.metadata.name] <= backoff + 1  # never more attempts than the backoff allows
        if t.phase == "Failed":
            assert w.pulls[ni.metadata.name] == backoff + 1 and t.message == "boom"
