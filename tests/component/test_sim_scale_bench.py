"""bench/sim_scale.py at a tiny scale, so the 100k-pod benchmark does not rot (the real run is manual)."""

from __future__ import annotations

from bench import sim_scale


def test_sim_scale_benchmark_smoke() -> None:
    r = sim_scale.run(pods=200, nodes=10, patches=100, watchers=3, concurrency=16, quiet=True)
    assert r["errors"] == 0
    assert r["writes"]["all_writes"]["requests"] == 400 and r["writes"]["all_writes"]["per_second"] > 0
    assert len(r["watch"]) == 3
    # every watcher saw every create and patch (plus the kubelets' status writes)
    assert all(w["events"] >= 400 for w in r["watch"])
    assert r["all_running_after_writes_s"] < 30 and r["sim_peak_rss_mb"] > 0
