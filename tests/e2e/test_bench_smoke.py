"""The pipeline benchmark (bench/pipeline.py) still runs: every scenario at a tiny scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pipeline_bench_runs_at_small_scale(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--pods", "10", "--cold-pods", "300", "--pull", "0.5",
         "--start-delay", "0.2", "--fast-start", "0.05", "--latency-samples", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    tp, cold, ro = results["throughput"], results["coldstart"], results["rollout"]
    assert tp["pods"] == 10 and 0 < tp["applied_s"] <= tp["done_s"]
    assert len(tp["isolated_ms"]) == 2
    assert cold["tracked"] == 300 and 0 < cold["replay_s"] <= cold["plan_s"]
    assert 0 < ro["inplace_s"] and 0 < ro["recreate_s"]
    spread = results["rollout_spread"]
    assert spread["nodes"] == 10 and 0 < spread["inplace_s"] and 0 < spread["recreate_s"]  # a pod per node
    assert "## Pipeline" in proc.stdout  # the docs table renders
