"""The API writes of one in-place update, as the API server sees them (bench/inplace_writes.py).

Kruise's own writes per update are fixed (InPlaceUpdateReady=False, then the pod patch, the Event,
InPlaceUpdateReady=True, the lifecycle move); the simulated kubelet must not add writes a kubelet
does not make (an echo of Kruise's Ready=False, a status while the old container stops): at scale
the rollout is bound by these writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PODS = 4


@pytest.mark.slow
def test_an_in_place_update_costs_kruises_writes_and_two_kubelet_status_writes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inplace_writes", "--pods", str(PODS), "--nodes", "2", "--budget", "1",
         "--restart", "0.5", "--quiet", "2", "--timeout", "120", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    rows = {(r["writer"], r["verb"], r["resource"]): r["count"] for r in res["rows"]}
    assert rows[("kruisebus", "create", "events")] == PODS  # SuccessfulUpdatePodInPlace, once per pod
    assert rows[("kruisebus", "patch", "pods")] >= 2 * PODS  # the update, then lifecycle Normal
    assert rows[("kruisebus", "patch", "pods/status")] >= 2 * PODS  # InPlaceUpdateReady False, then True
    # the new container created, then started (a third only when InPlaceUpdateReady=True came later
    # than the start); the sim wrote 4 before: Ready=False echoed, the old container stopping
    kubelet = rows[("kubelet (sim)", "patch", "pods/status")]
    assert kubelet <= 2.5 * PODS, res
    # Kruise's order on one pod: the readiness gate off through the status, then the pod itself,
    # with no kubelet write between them
    assert res["sequence"][:3] == ["kruisebus patch pods/status", "kruisebus patch pods",
                                   "kubelet (sim) patch pods/status"], res["sequence"]
