"""The per-workload rollout event limit: a burst, then the rate; drops are counted and handed back."""

from __future__ import annotations

from services.eventrate import MAX_KEYS, EventRateLimiter


def test_a_burst_then_the_rate_and_the_drops_are_reported_with_the_next_event() -> None:
    limit = EventRateLimiter(rate=10.0, burst=5)
    web = ("default", "web")
    assert [limit.admit(web, 0.0) for _ in range(5)] == [(True, 0)] * 5
    assert [limit.admit(web, 0.0) for _ in range(3)] == [(False, 0)] * 3
    assert limit.admit(("default", "other"), 0.0) == (True, 0), "one workload's flood does not limit another"
    assert limit.admit(web, 0.05) == (False, 0), "half a token after 50 ms at 10/s"
    assert limit.admit(web, 0.1) == (True, 4), "a token after 100 ms; the four dropped ones are reported"
    assert limit.admit(web, 0.1) == (False, 0)


def test_zero_rate_is_no_limit() -> None:
    limit = EventRateLimiter(rate=0.0, burst=0)
    assert all(limit.admit(("ns", "w"), 0.0) == (True, 0) for _ in range(10_000))


def test_idle_workloads_are_forgotten_so_the_table_stays_bounded() -> None:
    limit = EventRateLimiter(rate=1.0, burst=1)
    for i in range(MAX_KEYS + 10):
        limit.admit(("ns", f"w{i}"), float(i))
    assert len(limit.buckets) <= MAX_KEYS
