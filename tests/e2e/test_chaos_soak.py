"""The chaos soak, short: continuous rollouts of four CloneSets while processes are SIGKILLed.

Watcher, planner, executor and NATS are killed at random moments, a third of the kills two processes
at once (a fixed seed, printed), during
rollouts of an in-place, a ReCreate, a surging ReCreate and a partitioned CloneSet (the DaemonSet and
the SidecarSet of `python -m bench.chaos` stay out to keep this about two minutes on two cores; the
long soak runs them, docs/reliability.md), with
injected API errors and cut watches in some rounds; an independent checker (`services.chaoscheck`,
the API only) must see no invariant violation, and every round must converge once its faults stop.
About two minutes; `python -m bench.chaos` is the long version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Soak, SoakConfig, SoakResult

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(480)]

SEED = 20261201


def explain(result: SoakResult, soak: Soak) -> str:
    lines = [f"seed {SEED}: {result.summary()}", "violations:", *result.evidence[:40]]
    if result.final_problems:
        lines += ["not converged at the end:", *(f"  {k}: {v}" for k, v in result.final_problems.items())]
    lines.append(f"soak journal and service logs: {soak.stack.workdir}")
    for name in ("watcher", "planner", "executor", "webhook"):
        lines.append(f"--- {name} log ---\n{soak.stack.log_tail(name, 15)}")
    return "\n".join(lines)


async def test_chaos_soak_keeps_the_invariants_and_converges(tmp_path: Path) -> None:
    cfg = SoakConfig(rounds=40, seed=SEED, sizes=(8, 10, 8, 10), nodes=4, window=3.0, kills=1.5, pairs=0.3,
                     api_faults=True, settle_timeout=60, max_seconds=100, give_up_after=1,
                     daemonset_partition=None, sidecar_pods=0)  # see the module docstring
    print(f"chaos soak seed {SEED}")
    soak = Soak(cfg, workdir=tmp_path / "soak")
    result = await soak.run()
    print(result.summary())
    assert len(result.rounds) >= 5 and sum(result.kills.values()) >= 5, explain(result, soak)
    assert result.total_violations == 0, explain(result, soak)
    assert result.final_converged, explain(result, soak)
