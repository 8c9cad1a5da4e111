"""The consecutive-result rule (Kruise's `pkg/daemon/podprobe/worker.go` doProbe): a raw result becomes
the state only after failureThreshold / successThreshold identical results in a row."""

from __future__ import annotations

import pytest

from services.prober.thresholds import Thresholds

F, S = "Failed", "Succeeded"


@pytest.mark.parametrize(("success", "failure", "results", "states"), [
    # F,F,S,F,F,F with failureThreshold 3: the failures never reach 3 in a row until the end
    (1, 3, [F, F, S, F, F, F], ["Unknown", "Unknown", S, S, S, F]),
    (2, 3, [F, F, S, F, F, F], ["Unknown", "Unknown", "Unknown", "Unknown", "Unknown", F]),
    (2, 3, [S, S, F, S, S], ["Unknown", S, S, S, S]),
    (1, 1, [F, S, F], [F, S, F]),
    (0, 0, [F, S], [F, S]),  # thresholds below 1 count as 1
], ids=["FFSFFF-success1-failure3", "FFSFFF-success2-failure3", "SSFSS-success2", "thresholds-1",
        "thresholds-0-mean-1"])
def test_threshold_sequences(success: int, failure: int, results: list[str], states: list[str]) -> None:
    t = Thresholds(success, failure)
    seen = []
    for r in results:
        t.observe(r)  # type: ignore[arg-type]
        seen.append(t.state)
    assert seen == states


def test_reset_on_a_new_container_forgets_the_run() -> None:
    t = Thresholds(2, 2)
    t.observe("Succeeded")
    t.reset()
    assert not t.observe("Succeeded"), "one result after a reset is not two in a row"
    assert t.state == "Unknown"
    assert t.observe("Succeeded") and t.state == "Succeeded"
