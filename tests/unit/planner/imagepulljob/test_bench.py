"""The pre-download planner benchmark (bench/prepull_bench.py) still runs, and its scenarios are what
they say they are."""

from __future__ import annotations

from bench.prepull_bench import GATES, NOW, bench_job, bench_node_image, run
from services.planner.imagepulljob.job import JobView, plan_image_pull_job


def test_bench_runs_at_small_scale() -> None:
    results = run(nodes=30, repeat=1, parallelism=3)
    assert set(results) == {"job mid-way", "job finished", "nodeimages steady", "nodeimages fold"}
    assert all(ms >= 0 for ms in results.values())


def test_bench_mid_way_job_hands_the_image_to_parallelism_nodes() -> None:
    nodes = [bench_node_image(i, "done" if i < 4 else "pulling" if i < 6 else "new") for i in range(10)]
    plan = plan_image_pull_job(JobView(job=bench_job(3), node_images=nodes), now=NOW, gates=GATES)
    assert (plan.status.succeeded, plan.status.active) == (4, 2) and len(plan.next_nodes) == 1
