"""When a result is reported (Kruise's `pkg/daemon/podprobe/results_manager_test.go` TestResultManagerSet
and `pod_probe_controller_test.go` TestUpdateNodePodProbeStatus)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.prober.results import ResultCache, Target, truncate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def target(probe: str = "ppm-1#healthy") -> Target:
    return Target(namespace="default", pod="pod-1", pod_uid="pod-1-uid", probe=probe)


def test_I6_second_probe_unchanged_is_not_reported() -> None:
    cache = ResultCache()
    assert cache.set(target(), "Succeeded", "ok", T0) is not None
    assert cache.set(target(), "Succeeded", "ok", T0 + timedelta(seconds=1)) is None


def test_I6_unchanged_but_over_ten_minutes_is_reported_again_with_a_new_probe_time() -> None:
    cache = ResultCache()
    first = cache.set(target(), "Succeeded", "ok", T0)
    again = cache.set(target(), "Succeeded", "ok", T0 + timedelta(seconds=610))
    assert first is not None and again is not None
    assert again.time != first.time and again.last_transition_time == first.last_transition_time


def test_I5_one_probe_changes_the_other_is_untouched() -> None:
    cache = ResultCache()
    cache.set(target("ppm-1#other"), "Failed", "", T0)
    cache.set(target(), "Failed", "", T0)
    changed = cache.set(target(), "Succeeded", "", T0 + timedelta(seconds=1))
    assert changed is not None and changed.state == "Succeeded"
    assert changed.last_transition_time != "" and cache.last(("pod-1-uid", "ppm-1#other")) == "Failed"


def test_a_message_change_is_reported_without_a_transition() -> None:
    cache = ResultCache()
    first = cache.set(target(), "Failed", "3 players", T0)
    second = cache.set(target(), "Failed", "4 players", T0 + timedelta(seconds=1))
    assert first is not None and second is not None and second.last_transition_time == first.last_transition_time


def test_a_seeded_result_is_not_reported_again() -> None:
    cache = ResultCache()
    first = cache.set(target(), "Succeeded", "ok", T0)
    assert first is not None
    restarted = ResultCache()
    restarted.seed(first)
    assert restarted.set(target(), "Succeeded", "ok", T0 + timedelta(seconds=5)) is None


def test_message_is_truncated_to_1024_bytes_without_splitting_a_character() -> None:
    cache = ResultCache()
    out = cache.set(target(), "Succeeded", "é" * 1000, T0)
    assert out is not None and len(out.message.encode()) <= 1024 and out.message == "é" * 512
    assert truncate("x" * 2_000_000) == "x" * 1024
