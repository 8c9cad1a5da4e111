"""Int-or-percent parsing: Kruise's float parser, the legacy apimachinery parser, and the budgets built on them."""

from __future__ import annotations

import pytest

from schemas.cloneset import CloneSetScaleStrategy, CloneSetUpdateStrategy
from schemas.constants import MAX_INT32
from services.planner.cloneset.calc import max_unavailable_and_surge, scale_max_unavailable
from services.planner.kit.intstr import (
    IntOrPercentError,
    partition_replicas,
    scaled_value,
    scaled_value_float,
    validate_int_or_percent,
)


@pytest.mark.parametrize(
    ("partition", "replicas", "expected"),
    [
        (None, 5, 0),
        (0, 5, 0),
        (3, 5, 3),
        (7, 5, 5),  # clamped to replicas
        (-2, 5, 0),  # clamped to 0
        ("0%", 5, 0),
        ("20%", 5, 1),
        ("30%", 5, 2),  # ceil(1.5)
        ("99%", 5, 4),  # never all pods for a percent other than exactly 100%
        ("100%", 5, 5),
        ("100.0%", 5, 4),  # not the literal "100%" -> replicas-1
        ("150%", 5, 5),  # ceil(7.5)=8 != replicas, so no -1 rule; clamped to 5
        ("0.01%", 100, 1),  # fractional percents are valid for partition
        ("99%", 1, 1),  # replicas == 1: no "-1" rule
        ("90%", 10, 9),  # Kruise's status test E8
        ("50%", 0, 0),
    ],
)
def test_partition_replicas(partition: object, replicas: int, expected: int) -> None:
    assert partition_replicas(partition, replicas) == expected


@pytest.mark.parametrize(
    "bad", ["abc", "5", "%", "1.2.3%", "", True, 1.5, [1], "inf%", "nan%", "1e400%", 2**31]
)
def test_partition_replicas_rejects_garbage(bad: object) -> None:
    with pytest.raises(IntOrPercentError) as info:
        partition_replicas(bad, 5)
    assert info.value.field_value == bad
    assert isinstance(info.value, ValueError)


def test_float_parser_accepts_go_float_syntax() -> None:
    assert scaled_value_float("1e1%", 10, True) == 1
    assert scaled_value_float(".5%", 1000, True) == 5
    assert scaled_value_float("0x1p-1%", 200, True) == 1  # Go accepts hex floats
    assert scaled_value_float("33.3%", 10, False) == 3
    assert scaled_value_float("-10%", 5, True) == 0  # ceil(-0.5) = -0 -> 0
    assert validate_int_or_percent("5%", 10, True) == 1
    with pytest.raises(IntOrPercentError, match="not a percentage"):
        validate_int_or_percent("5", 10, True)
    with pytest.raises(IntOrPercentError, match="invalid syntax"):
        validate_int_or_percent(" 5%", 10, True)


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, True, 3),
        ("20%", 5, True, 1),
        ("20%", 7, True, 2),
        ("20%", 7, False, 1),
        ("5", 100, True, 5),  # legacy parser: "5" means 5 %
        ("5%%", 100, True, 5),  # every '%' is stripped
        ("+10%", 10, True, 1),
        ("-10%", 10, False, -1),
    ],
)
def test_legacy_scaled_value(value: object, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize("bad", ["33.3%", "abc", "", "1_0%", " 5%", None, 2.5])
def test_legacy_scaled_value_rejects(bad: object) -> None:
    with pytest.raises(IntOrPercentError):
        scaled_value(bad, 10, True)


def _strategy(**kw: object) -> CloneSetUpdateStrategy:
    return CloneSetUpdateStrategy(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("strategy", "replicas", "expected"),
    [
        (_strategy(), 5, (1, 0)),  # default 20%, rounded up (no surge)
        (_strategy(), 7, (2, 0)),
        (_strategy(max_unavailable="20%", max_surge=1), 7, (1, 1)),  # surge > 0 -> floor
        (_strategy(max_unavailable="20%", max_surge="10%"), 7, (1, 1)),  # surge ceil(0.7)=1
        (_strategy(max_unavailable="20%", max_surge=0), 7, (2, 0)),
        (
            _strategy(max_unavailable="20%", max_surge=2, paused=True),
            7,
            (2, 0),
        ),  # paused forces surge 0 first
        (_strategy(max_unavailable="33.3%", max_surge=1), 10, (0, 1)),  # legacy parser error -> 0
        (_strategy(max_unavailable=1, max_surge="abc"), 10, (1, 0)),
        (_strategy(max_unavailable=3), 10, (3, 0)),
        (
            _strategy(type="OnDelete", max_unavailable=5, max_surge=3),
            7,
            (1, 0),
        ),  # no rolling block: floor(20%)
    ],
)
def test_max_unavailable_and_surge(
    strategy: CloneSetUpdateStrategy, replicas: int, expected: tuple[int, int]
) -> None:
    assert max_unavailable_and_surge(strategy, replicas) == expected


def test_scale_max_unavailable() -> None:
    assert scale_max_unavailable(CloneSetScaleStrategy(), 5) == MAX_INT32
    assert scale_max_unavailable(CloneSetScaleStrategy(max_unavailable="50%"), 5) == 3
    assert scale_max_unavailable(CloneSetScaleStrategy(max_unavailable=2), 5) == 2
    assert scale_max_unavailable(CloneSetScaleStrategy(max_unavailable="x"), 5) == 0
