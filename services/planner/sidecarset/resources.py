"""`resourcesPolicy`: a sidecar's resources computed from the pod's own containers at creation.

Kruise's `pkg/webhook/pod/mutating/sidecarset_resources.go` (applyResourcesPolicy) and its expression
language, `pkg/util/calculator` (`+ - * /`, parentheses, `max(a, b)`, `min(a, b)`, numbers, percentages
such as `50%` = 0.5, quantities such as `200m` or `1Gi`, and the one variable `cpu` or `memory`).
Quantities are exact (nano units, with Kubernetes' suffix kind kept for printing); numbers are floats
and a number meets a quantity as milli units truncated, as Kruise's calculator does. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import msgspec

from schemas.constants import RESOURCES_MODE_MAX, RESOURCES_MODE_SUM
from schemas.kube import JsonObject
from schemas.sidecarset import ResourcesPolicy, sidecar_fields
from services.planner.kit.gojson import format_quantity, parse_quantity

_MILLI: Final = 10**6  # nano units per milli unit
_UNITS: Final = frozenset({"m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi"})
_NUMBER_CHARS: Final = frozenset("0123456789.eE+-")
_MEMORY_WORD: Final = re.compile(r"\bmemory\b")
_QUANTITY_FORMAT_ERROR: Final = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
CPU: Final = "cpu"
MEMORY: Final = "memory"


class ExpressionError(ValueError):
    """The calculator's error, in its words."""


@dataclass(frozen=True)
class Quantity:
    """A `resource.Quantity`: value in nano units and suffix kind ("dec", "bin", "exp"; "" = the zero
    Quantity Go writes for a missing entry)."""

    nanos: int
    fmt: str = "dec"

    def __str__(self) -> str:
        return format_quantity(self.nanos, self.fmt or "dec") or f"{Decimal(self.nanos) / 10**9}"

    def milli(self) -> int:
        """`MilliValue`: rounded up (away from zero)."""
        m = math.ceil(abs(self.nanos) / _MILLI) if self.nanos % _MILLI else abs(self.nanos) // _MILLI
        return -m if self.nanos < 0 else m

    def add(self, other: Quantity) -> Quantity:
        """`Add`: the receiver's suffix kind, the other's when the receiver is zero."""
        return Quantity(self.nanos + other.nanos, other.fmt if self.nanos == 0 else self.fmt)

    def with_milli(self, milli: int) -> Quantity:
        return Quantity(milli * _MILLI, self.fmt)


def quantity(value: object) -> Quantity | None:
    """A resource list entry as Kubernetes decodes it (None: not a quantity)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    parsed = parse_quantity(value if isinstance(value, str) else format(Decimal(repr(value)), "f"))
    return None if parsed is None else Quantity(*parsed)


def _from_number(n: float) -> Quantity:
    """`NewMilliQuantity(int64(n*1000), DecimalSI)`."""
    return Quantity(int(n * 1000) * _MILLI)


def go_g(n: float) -> str:
    """Go's `%g` of a float64 (shortest digits; exponent form below 1e-4 and from 1e6)."""
    if n == 0:
        return "-0" if math.copysign(1, n) < 0 else "0"
    if math.isinf(n) or math.isnan(n):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(n, "NaN")
    sign, digits, exp = Decimal(repr(n)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exp)  # position of the decimal point in ds
    x = point - 1
    out: str
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        out = f"{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + ds
    elif point >= len(ds):
        out = ds + "0" * (point - len(ds))
    else:
        out = ds[:point] + "." + ds[point:]
    return ("-" if sign else "") + out


@dataclass(frozen=True)
class _Value:
    number: float = 0.0
    q: Quantity | None = None

    def __str__(self) -> str:
        return str(self.q) if self.q is not None else go_g(self.number)


def _as_quantity(v: _Value) -> Quantity:
    return v.q if v.q is not None else _from_number(v.number)


_Token = tuple[str, str, int]  # kind, text, column after the token


def _read_number(s: str, i: int) -> int:
    seen_dot = seen_e = seen_percent = expect_digit = False
    while i < len(s):
        r = s[i]
        if r.isdigit():
            expect_digit = False
        elif r == ".":
            if seen_dot or seen_e or seen_percent:
                break
            seen_dot = True
        elif r in "eE":
            if seen_e or seen_percent:
                break
            seen_e = expect_digit = True
        elif r in "+-":
            if not expect_digit:
                break
            expect_digit = False
        elif r == "%":
            if seen_percent:
                break
            seen_percent = True
        elif r.isalpha():
            if expect_digit:
                break
            while i < len(s) and s[i].isalpha():
                i += 1
            break
        else:
            break
        i += 1
    return i


def _is_quantity(text: str) -> bool:
    end = next((i for i, r in enumerate(text) if r not in _NUMBER_CHARS), 0)
    return end > 0 and text[end:] in _UNITS


def _tokens(s: str) -> list[_Token]:
    """The calculator's lexer: NUMBER, QUANTITY, IDENT, one-character operators, then EOF."""
    out: list[_Token] = []
    i = 0
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s):
            out.append(("EOF", "", i + 1))
            return out
        r = s[i]
        if r == "." or r.isdigit():
            j = _read_number(s, i)
            text = s[i:j]
            out.append(("QUANTITY" if _is_quantity(text) else "NUMBER", text, j + 1))
        elif r.isalpha():
            j = i
            while j < len(s) and (s[j].isalnum() or s[j] == "_"):
                j += 1
            out.append(("IDENT", s[i:j], j + 1))
        else:
            j = i + 1
            out.append((r, r, j + 1))
        i = j


class _SyntaxError(Exception):
    pass


class _Parser:
    """The calculator's grammar, evaluated as it is read; the last semantic error wins over a syntax error."""

    def __init__(self, text: str, variables: Mapping[str, _Value]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.variables = variables
        self.error: str | None = None

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self, kind: str) -> _Token:
        tok = self.tokens[self.pos]
        if tok[0] != kind:
            raise _SyntaxError(tok[2])
        self.pos += 1
        return tok

    def fail(self, message: str) -> None:
        self.error = message

    def parse(self) -> _Value | None:
        value = self.expr()
        self.take("EOF")
        return value

    def expr(self) -> _Value | None:
        left = self.term()
        while self.peek()[0] in ("+", "-"):
            op = self.take(self.peek()[0])[0]
            right = self.term()
            left = self.add(left, right, negate=op == "-")
        return left

    def term(self) -> _Value | None:
        left = self.factor()
        while self.peek()[0] in ("*", "/"):
            op = self.take(self.peek()[0])[0]
            right = self.factor()
            left = self.mul(left, right) if op == "*" else self.div(left, right)
        return left

    def factor(self) -> _Value | None:
        kind, text, col = self.peek()
        if kind == "NUMBER":
            self.pos += 1
            return _Value(number=_parse_number(text))
        if kind == "QUANTITY":
            self.pos += 1
            parsed = parse_quantity(text)
            if parsed is None:
                self.fail(_QUANTITY_FORMAT_ERROR)
                return None
            return _Value(q=Quantity(*parsed))
        if kind == "IDENT":
            self.pos += 1
            if self.peek()[0] == "(":
                self.pos += 1
                args = [self.expr()]
                if self.peek()[0] == ",":
                    self.pos += 1
                    args.append(self.expr())
                self.take(")")
                result = self.call(text, args)
                if result is None and self.error is None:
                    self.fail("function call failed")
                return result
            value = self.variables.get(text.lower())
            if value is None:
                self.fail(f"undefined variable: {text.lower()}")
            return value
        if kind == "(":
            self.pos += 1
            value = self.expr()
            self.take(")")
            return value
        if kind == "-":
            self.pos += 1
            inner = self.factor()
            if inner is None:
                return None
            if inner.q is not None:
                return _Value(q=Quantity(-inner.q.nanos, inner.q.fmt))
            return _Value(number=-inner.number)
        raise _SyntaxError(col)

    def add(self, left: _Value | None, right: _Value | None, *, negate: bool) -> _Value | None:
        if left is None or right is None:
            if self.error is None:
                self.fail(f"invalid {'subtraction' if negate else 'addition'} operation")
            return None
        if left.q is not None or right.q is not None:
            rq = _as_quantity(right)
            if negate:
                rq = Quantity(-rq.nanos, rq.fmt)
            return _Value(q=_as_quantity(left).add(rq))
        return _Value(number=left.number - right.number if negate else left.number + right.number)

    def mul(self, left: _Value | None, right: _Value | None) -> _Value | None:
        if left is None or right is None:
            if self.error is None:
                self.fail("invalid multiplication operation")
            return None
        if left.q is not None and right.q is not None:
            self.fail("multiplication of two quantities")
            return None
        if left.q is not None:
            return _Value(q=left.q.with_milli(int(float(left.q.milli()) * right.number)))
        if right.q is not None:
            return _Value(q=right.q.with_milli(int(float(right.q.milli()) * left.number)))
        return _Value(number=left.number * right.number)

    def div(self, left: _Value | None, right: _Value | None) -> _Value | None:
        if left is None or right is None:
            if self.error is None:
                self.fail("invalid division operation")
            return None
        if right.q is not None:
            self.fail("division by quantity")
            return None
        if right.number == 0:
            self.fail("division by zero")
            return None
        if left.q is not None:
            return _Value(q=left.q.with_milli(int(float(left.q.milli()) / right.number)))
        return _Value(number=left.number / right.number)

    def call(self, name: str, args: list[_Value | None]) -> _Value | None:
        lowered = name.lower()
        if lowered not in ("max", "min"):
            self.fail(f"unknown function: {name}")
            return None
        if len(args) != 2:
            self.fail(f"{lowered} function requires exactly 2 arguments, got {len(args)}")
            return None
        left, right = args
        if left is None or right is None:
            return None
        if left.q is None and right.q is None:
            pick_left = left.number >= right.number if lowered == "max" else left.number <= right.number
            return left if pick_left else right
        lq, rq = _as_quantity(left), _as_quantity(right)
        pick_left = lq.nanos >= rq.nanos if lowered == "max" else lq.nanos <= rq.nanos
        return _Value(q=lq if pick_left else rq)


def _parse_number(text: str) -> float:
    """`parseNumber`: a float or a percentage; unparsable reads as 0, as Kruise ignores the error."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return 0.0


def calculate(expression: str, variables: Mapping[str, _Value]) -> _Value:
    """`Calculator.Parse`: the value of `expression`, or ExpressionError (Kruise's message)."""
    parser = _Parser(expression, variables)
    try:
        result = parser.parse()
    except _SyntaxError as e:
        raise ExpressionError(parser.error or f"parse error: syntax error at line 1, col {e.args[0]}") from None
    if result is None:
        raise ExpressionError(parser.error or "no result from parser")
    if (result.q is not None and result.q.nanos < 0) or (result.q is None and result.number < 0):
        raise ExpressionError(f"calculation result is negative: {result}")
    return result


def expression_error(expression: str, variable: str) -> str | None:
    """`validateResourceExpression`: the expression evaluated with `variable` = the number 1."""
    if not expression:
        return None
    try:
        calculate(expression, {variable: _Value(number=1.0)})
    except ExpressionError as e:
        return f"invalid expression: {e}"
    return None


def _go_quote(text: str) -> str:
    return msgspec.json.encode(text).decode()


def _evaluate(expression: str, aggregated: Quantity) -> Quantity:
    """`evaluateResourceExpression`: the variable is `memory` if the expression names it, else `cpu`."""
    name = MEMORY if _MEMORY_WORD.search(expression) else CPU
    try:
        result = calculate(expression, {name: _Value(q=aggregated)})
    except ExpressionError as e:
        raise ExpressionError(f"failed to parse expression {_go_quote(expression)}: {e}") from None
    if result.q is not None:
        return result.q
    if name == CPU:
        return _from_number(result.number)
    return Quantity(int(result.number) * 10**9)


def _resource(container: JsonObject, kind: str, name: str) -> Quantity | None:
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        return None
    q = quantity(value)
    if q is None:
        raise ExpressionError(f"container {container.get('name')} has an invalid {kind}.{name} {value!r}")
    return q


def _aggregate(targets: Sequence[JsonObject], mode: str) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    """`aggregateResources`: sum or max; a limit only when every target has one; missing requests are 0."""
    limits: dict[str, Quantity] = {}
    requests: dict[str, Quantity] = {}
    if mode not in (RESOURCES_MODE_SUM, RESOURCES_MODE_MAX):
        return limits, requests
    for name in (CPU, MEMORY):
        have = [_resource(c, "limits", name) for c in targets]
        want = [q for q in (_resource(c, "requests", name) for c in targets) if q is not None]
        if mode == RESOURCES_MODE_SUM:
            if all(q is not None for q in have):
                total = Quantity(0)
                for q in have:
                    assert q is not None
                    total = total.add(q)
                limits[name] = total
            total = Quantity(0)
            for q in want:
                total = total.add(q)
            if total.nanos != 0:
                requests[name] = total
        else:
            if have and all(q is not None for q in have):
                limits[name] = _max(q for q in have if q is not None)
            if want:
                requests[name] = _max(want)
    return limits, requests


def _max(items: Iterable[Quantity]) -> Quantity:
    best: Quantity | None = None
    for q in items:
        if best is None or q.nanos > best.nanos:
            best = q
    assert best is not None
    return best


def target_containers(pod: JsonObject, regex: str, sidecar_names: set[str]) -> list[JsonObject]:
    """`getTargetContainers`: native-sidecar init containers, then containers, whose name the regex
    finds (unanchored), except containers named like a sidecar of a SidecarSet injected now."""
    pattern = re.compile(regex)
    spec = pod.get("spec") or {}
    out: list[JsonObject] = []
    for c in spec.get("initContainers") or []:
        name = str(c.get("name") or "")
        if name in sidecar_names or c.get("restartPolicy") != "Always":
            continue
        if pattern.search(name):
            out.append(c)
    for c in spec.get("containers") or []:
        name = str(c.get("name") or "")
        if name not in sidecar_names and pattern.search(name):
            out.append(c)
    return out


def policy_of(sidecar: JsonObject) -> ResourcesPolicy | None:
    raw = sidecar_fields(sidecar).resources_policy
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, ResourcesPolicy)
    except msgspec.ValidationError as e:
        raise ExpressionError(f"invalid resourcesPolicy: {e}") from None


def sidecar_resources(policy: ResourcesPolicy, pod: JsonObject, sidecar_names: set[str]) -> JsonObject:
    """`applyResourcesPolicy`: the sidecar's `resources`. Raises ExpressionError (the pod is rejected)."""
    try:
        targets = target_containers(pod, policy.target_containers_name_regex, sidecar_names)
    except re.error as e:
        raise ExpressionError(f"failed to get target containers: invalid regex pattern "
                              f"{_go_quote(policy.target_containers_name_regex)}: {e}") from None
    if not targets:
        raise ExpressionError(f"no containers match the regex pattern {_go_quote(policy.target_containers_name_regex)}")
    limits, requests = _aggregate(targets, policy.target_containers_mode)
    out: JsonObject = {}
    expr = policy.resources_expr
    if expr.limits is not None:
        computed: dict[str, str] = {}
        for name, text, label in ((CPU, expr.limits.cpu, "CPU"), (MEMORY, expr.limits.memory, "memory")):
            if text and name in limits:
                try:
                    computed[name] = str(_evaluate(text, limits[name]))
                except ExpressionError as e:
                    raise ExpressionError(f"failed to evaluate {label} limits expression: {e}") from None
        if computed:
            out["limits"] = computed
    if expr.requests is not None:
        computed = {}
        for name, text, label in ((CPU, expr.requests.cpu, "CPU"), (MEMORY, expr.requests.memory, "memory")):
            if text:
                try:
                    computed[name] = str(_evaluate(text, requests.get(name, Quantity(0, ""))))
                except ExpressionError as e:
                    raise ExpressionError(f"failed to evaluate {label} requests expression: {e}") from None
        if computed:
            out["requests"] = computed
    return out


__all__ = ["CPU", "MEMORY", "ExpressionError", "Quantity", "calculate", "expression_error", "go_g", "policy_of",
           "quantity", "sidecar_resources", "target_containers"]
