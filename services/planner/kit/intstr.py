"""Int-or-percent parsing exactly as OpenKruise's CloneSet controller and webhook do it.

Kruise uses *two* parsers for the same YAML shape and they disagree:

* the float-capable Kruise parser (``util.GetScaledValueFromIntOrPercent``) for ``partition`` and for the
  webhook's maxUnavailable/maxSurge checks: strings must end in ``%`` and may be fractional ("0.01%");
* the deprecated apimachinery parser (``intstr.GetValueFromIntOrPercent``) for maxUnavailable/maxSurge/
  scaleStrategy.maxUnavailable at runtime: every string is a percent after *all* ``%`` are removed and must
  be an integer, so ``"33.3%"`` fails (the controller then uses 0) and ``"5"`` means 5 %.

Reproducing both, including the quirks, is what makes step-by-step rollouts match Kruise. Everything here
is pure arithmetic; Go's float64 behaviour is mirrored by using Python floats in the same operation order.
"""

from __future__ import annotations

import math
import re
from typing import Final

from schemas.constants import MAX_INT32

_MIN_INT32: Final = -(2**31)
_MIN_INT64: Final = -(2**63)

# strconv.Atoi (base 10, no underscores, optional sign).
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
# strconv.ParseFloat decimal and hexadecimal forms (Go requires a 'p' exponent for hex floats).
_GO_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")


class IntOrPercentError(ValueError):
    """A value that is neither an int32 nor an acceptable percent string.

    Carries the offending value so callers (validation, condition messages) can report it verbatim.
    """

    def __init__(self, field_value: object, message: str) -> None:
        super().__init__(message)
        self.field_value = field_value
        self.message = message


def _as_int32(value: object) -> int:
    """An IntOrString's integer arm: Kubernetes decodes it into int32, so bools/floats/out-of-range fail."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise IntOrPercentError(value, f"invalid type: {type(value).__name__} is neither int nor percentage")
    if not _MIN_INT32 <= value <= MAX_INT32:
        raise IntOrPercentError(value, f"value {value} does not fit in int32")
    return value


def _go_float_to_int(x: float) -> int:
    """Go's ``int(float64)`` on amd64: NaN, infinities and out-of-range values become MinInt64."""
    if not math.isfinite(x) or not float(_MIN_INT64) <= x < float(2**63):
        return _MIN_INT64
    return int(x)


def _parse_go_float(text: str, original: object) -> float:
    """``strconv.ParseFloat(text, 64)`` for the forms users write; inf/nan/overflow are errors.

    Go would accept "Inf"/"NaN" and then produce MinInt64 after rounding, which every caller rejects
    or clamps to 0 anyway, so reporting an error gives the same observable result.
    """
    if _GO_DEC_FLOAT.fullmatch(text):
        v = float(text)
    elif _GO_HEX_FLOAT.fullmatch(text):
        v = float.fromhex(text)
    else:
        raise IntOrPercentError(original, f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    if not math.isfinite(v):
        raise IntOrPercentError(original, f'strconv.ParseFloat: parsing "{text}": value out of range')
    return v


def scaled_value_float(value: object, total: int, round_up: bool) -> int:
    """Kruise's ``GetScaledValueFromIntOrPercent``: int as is; "x%" (x may be fractional) scaled by total.

    Strings without a trailing ``%`` are rejected ("5" is an error, unlike the legacy parser). This is the
    parser behind partition and behind the webhook's maxUnavailable/maxSurge checks.
    """
    if value is None:
        raise IntOrPercentError(value, "nil value for IntOrString")
    if isinstance(value, str):
        if not value.endswith("%"):
            raise IntOrPercentError(value, "invalid type: string is not a percentage")
        v = _parse_go_float(value[:-1], value)
        scaled = v * float(total) / 100
        return _go_float_to_int(math.ceil(scaled) if round_up else math.floor(scaled))
    return _as_int32(value)


def scaled_int_percent(value: object, total: int, round_up: bool) -> int:
    """apimachinery ``GetScaledValueFromIntOrPercent`` (the Advanced DaemonSet's maxUnavailable, maxSurge
    and partition): None is 0, an int as is, "N%" with an integer N scaled by total; any other string
    ("5", "33.3%") raises."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.endswith("%") or not _GO_ATOI.fullmatch(value[:-1]):
            raise IntOrPercentError(value, 'invalid value for IntOrString: invalid type: string is not a percentage')
        scaled = float(int(value[:-1])) * float(total) / 100
        return _go_float_to_int(math.ceil(scaled) if round_up else math.floor(scaled))
    return _as_int32(value)


def validate_int_or_percent(value: object, total: int, round_up: bool) -> int:
    """Alias of :func:`scaled_value_float` under the name validation code reads best with."""
    return scaled_value_float(value, total, round_up)


def partition_replicas(partition: object, replicas: int) -> int:
    """Kruise's ``CalculatePartitionReplicas``: the number of pods to keep on the current revision.

    Percent partitions round up (so any non-zero percent keeps at least one old pod) but, when
    replicas > 1, a percent other than exactly "100%" never keeps *all* pods: "99%" of 5 is 4, so a
    rollout always makes progress. The result is clamped to [0, replicas]. Errors are raised; the
    controller logs them and uses 0.
    """
    if partition is None:
        return 0
    value = scaled_value_float(partition, replicas, True)
    if replicas > 1 and value == replicas and isinstance(partition, str) and partition != "100%":
        value = replicas - 1
    return max(min(value, replicas), 0)


def scaled_value(value: object, total: int, round_up: bool) -> int:
    """The deprecated apimachinery ``GetValueFromIntOrPercent`` Kruise still uses at runtime.

    Any string is a percent once every ``%`` is removed, and must then be a base-10 integer: "5" is 5 %,
    "33.3%" raises (callers treat that as 0 — QUIRK, the webhook accepted it).
    """
    if value is None:
        raise IntOrPercentError(value, "nil value for IntOrString")
    if isinstance(value, str):
        stripped = value.replace("%", "")
        if not _GO_ATOI.fullmatch(stripped) or not _MIN_INT64 <= int(stripped) < 2**63:
            raise IntOrPercentError(value, f'invalid value for IntOrString: invalid value "{value}"')
        scaled = float(int(stripped)) * float(total) / 100
        return _go_float_to_int(math.ceil(scaled) if round_up else math.floor(scaled))
    return _as_int32(value)


def scaled_or_zero(value: object, total: int, round_up: bool) -> int:
    """The controller ignores parse errors (``x, _ := GetValueFromIntOrPercent(...)``): error -> 0."""
    try:
        return scaled_value(value, total, round_up)
    except IntOrPercentError:
        return 0
