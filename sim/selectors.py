"""Label selectors (equality and set-based) and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sim.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)\s*$")


def _split_terms(s: str) -> list[str]:
    terms: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in (t.strip() for t in terms) if t]


def parse_label_selector(s: str | None) -> Predicate | None:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k` -> predicate on an object's labels; None when empty."""
    if not s or not s.strip():
        return None
    reqs: list[tuple[str, str, frozenset[str]]] = []  # (op, key, values)
    for term in _split_terms(s):
        m = _EQ_RE.match(term)
        if m:
            key, op, val = m.groups()
            reqs.append(("!=" if op == "!=" else "=", key, frozenset((val,))))
            continue
        m = _SET_RE.match(term)
        if not m:
            raise bad_request(f"unable to parse requirement: found '{term}', expected: identifier")
        neg, key, op, vals = m.groups()
        if op:
            if neg:
                raise bad_request(f"unable to parse requirement: {term}")
            reqs.append((op, key, frozenset(v.strip() for v in vals.split(",") if v.strip())))
        else:
            reqs.append(("!exists" if neg else "exists", key, frozenset()))

    def holds(op: str, key: str, values: frozenset[str], labels: dict[str, str]) -> bool:
        if op == "=" or op == "in":
            return key in labels and labels[key] in values
        if op == "!=" or op == "notin":
            return key not in labels or labels[key] not in values
        if op == "exists":
            return key in labels
        return key not in labels

    def pred(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(holds(op, k, vs, labels) for op, k, vs in reqs)

    return pred


def match_label_selector_obj(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector object (matchLabels + matchExpressions) against labels."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(s: str | None) -> Predicate | None:
    """`metadata.name=x,spec.nodeName!=,status.phase=Running` -> predicate; any dotted path is allowed."""
    if not s or not s.strip():
        return None
    reqs: list[tuple[str, bool, str]] = []
    for term in _split_terms(s):
        m = _EQ_RE.match(term)
        if not m:
            raise bad_request(f"invalid selector: '{s}'; can't understand '{term}'")
        path, op, val = m.groups()
        reqs.append((path, op != "!=", val))

    def pred(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, p) == v) == eq for p, eq, v in reqs)

    return pred


def selector_to_string(selector: dict[str, Any] | None) -> str:
    """metav1.LabelSelector -> the string form (what `status.labelSelector` holds)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In":
            parts.append(f"{k} in ({','.join(sorted(vals))})")
        elif op == "NotIn":
            parts.append(f"{k} notin ({','.join(sorted(vals))})")
        elif op == "Exists":
            parts.append(k)
        elif op == "DoesNotExist":
            parts.append(f"!{k}")
    return ",".join(parts)
