"""The consecutive-result rule of a probe worker (Kruise's `pkg/daemon/podprobe/worker.go` doProbe).

A raw result only becomes the probe's state after it has been seen `failureThreshold` times in a row
(Failed) or `successThreshold` times in a row (Succeeded), both at least 1; until then the previous
state stays. Pure: the worker feeds it results, it answers what the state is now.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.constants import PROBE_FAILED, PROBE_SUCCEEDED
from schemas.messages import ProbeState


@dataclass
class Thresholds:
    success_threshold: int
    failure_threshold: int
    state: ProbeState = "Unknown"  # the committed state
    last: ProbeState | None = None  # the last raw result
    run: int = 0  # how many times in a row `last` was seen

    def reset(self, state: ProbeState = "Unknown") -> None:
        """A new container (or a changed probe): back to `state`, the run forgotten."""
        self.state, self.last, self.run = state, None, 0

    def observe(self, result: ProbeState) -> bool:
        """Feed one raw result (Succeeded / Failed); True when it is committed as the state now."""
        if result == self.last:
            self.run += 1
        else:
            self.last, self.run = result, 1
        needed = max(self.failure_threshold, 1) if result == PROBE_FAILED else max(self.success_threshold, 1)
        if result not in (PROBE_SUCCEEDED, PROBE_FAILED) or self.run < needed:
            return False
        self.state = result
        return True


__all__ = ["Thresholds"]
