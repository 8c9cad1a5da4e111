"""The GC policy of the long-running processes: survivors of a full collection are not walked again,
and a dead reference cycle among them is still freed at the next rescan."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.gcpolicy import GcPolicy, install


class Node:
    """One half of a reference cycle (only the cyclic collector can free it)."""

    def __init__(self) -> None:
        self.other: Node | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policy() -> Iterator[tuple[GcPolicy, Clock, list[tuple[int, float]]]]:
    clock = Clock()
    pauses: list[tuple[int, float]] = []
    p = GcPolicy(rescan=600.0, on_pause=lambda g, s: pauses.append((g, s)), clock=clock)
    gc.collect()
    gc.callbacks.append(p)
    try:
        yield p, clock, pauses
    finally:
        gc.callbacks.remove(p)
        gc.unfreeze()
        gc.collect()


def test_the_survivors_of_a_full_collection_are_frozen_and_the_next_one_walks_only_new_objects(
        policy: tuple[GcPolicy, Clock, list[tuple[int, float]]]) -> None:
    p, _, pauses = policy
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # this interpreter's modules, functions, classes... survived and were frozen
    assert gc.get_count()[2] == 0 and len(gc.get_objects(2)) == 0  # nothing left for the next one to walk
    assert p.full == 1 and pauses and pauses[-1][0] == 2 and pauses[-1][1] >= 0
    born = [[i] for i in range(5000)]  # survives: frozen by the next full collection, walked once
    gc.collect()
    assert gc.get_freeze_count() >= frozen + len(born)


def test_a_frozen_dead_cycle_is_freed_once_the_rescan_interval_has_passed(
        policy: tuple[GcPolicy, Clock, list[tuple[int, float]]]) -> None:
    p, clock, _ = policy
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    gc.collect()  # a and b survive (the frame holds them) and are frozen
    del a, b
    gc.collect()
    assert ref() is not None  # dead, but frozen: not walked
    clock.now = 599.0
    gc.collect()
    assert ref() is not None and p.rescans == 0  # not yet
    clock.now = 600.0
    gc.collect()  # the rescan: unfrozen as it starts, so this one frees the cycle
    assert ref() is None and p.rescans == 1
    assert gc.get_freeze_count() > 0  # and its survivors are frozen again


def test_install_adds_the_policy_once() -> None:
    before = list(gc.callbacks)
    try:
        first = install()
        assert install() is first
        assert sum(isinstance(cb, GcPolicy) for cb in gc.callbacks) == 1
    finally:
        gc.callbacks[:] = before
        gc.unfreeze()
