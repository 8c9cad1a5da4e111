"""The cyclic garbage collector of a process that keeps a large view in memory.

Every kruisebus service holds its view of the cluster (10,000 pods are millions of objects the
collector tracks), and CPython's full collection walks all of them each time, however few were
allocated since the last one. In the 10,000-pod PodProbeMarker benchmark that was each prober
pausing ~0.1 s every 5 s (its workers' timers survive long enough to count as old), and the
planner, the watcher and the sim pausing for 0.1-0.4 s now and then: pauses that land straight in
the second a probe result has to become a pod label.

The policy: what survives a full collection is live at that moment, so it is moved to the permanent
generation (`gc.freeze`), and the next full collections walk only what was allocated since. A
reference cycle among frozen objects that dies later (a stopped probe worker and its task refer to
each other) would never be freed, so once every `rescan` seconds a full collection walks everything
again (`gc.unfreeze` as it starts). Reference counting frees every acyclic object at once, frozen or
not: the view's pods, replaced on each change, are freed as before.

Installed by each process's `main` (the services' and the sim's), as uvloop is: library code and
tests keep CPython's default behaviour.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_RESCAN", "GcPolicy", "install"]

DEFAULT_RESCAN = 600.0
"""Seconds between full collections that walk the frozen objects too."""

OnPause = Callable[[int, float], None]
"""Told each collection's generation and its duration (seconds)."""


class GcPolicy:
    """The `gc.callbacks` entry that freezes the survivors of each full collection (see the module)."""

    def __init__(self, *, rescan: float = DEFAULT_RESCAN, on_pause: OnPause | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rescan = rescan
        self.on_pause = on_pause
        self.clock = clock
        self.rescanned = clock()
        self.full = 0  # full collections seen
        self.rescans = 0  # of which walked the frozen objects too
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        generation = int(info.get("generation", 0))
        if phase == "start":
            if generation == 2 and self.clock() - self.rescanned >= self.rescan:
                gc.unfreeze()  # this collection walks everything, and frees the cycles that died frozen
                self.rescanned = self.clock()
                self.rescans += 1
            self._started = time.perf_counter()
            return
        if generation == 2:
            self.full += 1
            gc.freeze()
        if self.on_pause is not None:
            self.on_pause(generation, time.perf_counter() - self._started)


def install(*, rescan: float = DEFAULT_RESCAN, on_pause: OnPause | None = None) -> GcPolicy:
    """Freeze the survivors of full collections in this process from now on (once: a policy already
    installed is returned as it is)."""
    for cb in gc.callbacks:
        if isinstance(cb, GcPolicy):
            return cb
    policy = GcPolicy(rescan=rescan, on_pause=on_pause)
    gc.callbacks.append(policy)
    return policy
