"""The timer heap the planner can wake workloads with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.planner.kit.timers import TimerHeap


def test_rearming_replaces_and_cancel_disarms() -> None:
    h: TimerHeap[str] = TimerHeap()
    h.arm("a", 10.0)
    h.arm("b", 5.0)
    h.arm("a", 3.0)
    h.arm("c", 7.0)
    h.cancel("c")
    assert h.next_due() == 3.0 and len(h) == 2
    assert h.pop_due(4.0) == ["a"]
    assert h.pop_due(4.0) == [] and h.next_due() == 5.0
    h.arm("b", 20.0)  # pushed later: its old 5.0 entry is stale
    assert h.pop_due(10.0) == [] and h.when("b") == 20.0
    assert h.pop_due(20.0) == ["b"] and h.next_due() is None and len(h) == 0


@given(st.lists(st.tuples(st.integers(0, 9), st.floats(0, 100), st.booleans()), max_size=60), st.floats(0, 100))
def test_pop_due_returns_exactly_the_keys_last_armed_at_or_before_now(ops: list[tuple[int, float, bool]],
                                                                      now: float) -> None:
    h: TimerHeap[int] = TimerHeap()
    model: dict[int, float] = {}
    for key, when, cancel in ops:
        if cancel:
            h.cancel(key)
            model.pop(key, None)
        else:
            h.arm(key, when)
            model[key] = when
    due = h.pop_due(now)
    assert sorted(due) == sorted(k for k, w in model.items() if w <= now)
    assert [model[k] for k in due] == sorted(model[k] for k in due)
    rest = {k: w for k, w in model.items() if w > now}
    assert h.next_due() == (min(rest.values()) if rest else None)
