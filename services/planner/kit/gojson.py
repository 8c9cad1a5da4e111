"""Pod templates as Go's ``encoding/json`` writes them: the bytes every Kruise revision is hashed over.

Kubernetes and Kruise controllers hash a ControllerRevision's ``data`` bytes, and those bytes are Go's
re-encoding of a *decoded* object: keys sorted, compact, ``<`` ``>`` ``&`` U+2028 U+2029 escaped, the
struct-typed members Go always writes present (``"resources":{}``, ``"divisor":"0"``, ...) and every
``resource.Quantity`` in its canonical spelling. Any workload whose revisions hold a pod template
(CloneSet, Advanced DaemonSet, ...) must produce exactly these bytes for a takeover from OpenKruise to
keep its revision names; the rules live here once (docs/planner.md, "Taking over from OpenKruise").
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

import msgspec

from schemas.kube import JsonObject, PodTemplateSpec

PATCH_KEY = "$patch"
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")

# Go's encoding/json escapes these even inside strings (HTML safety + JS line separators).
_GO_JSON_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_json_bytes(value: Any) -> bytes:
    """Serialise like Go's ``json.Marshal`` of decoded JSON: sorted keys, compact, HTML-escaped.

    Floats that are whole numbers keep Python's spelling, which differs from Go only for magnitudes
    >= 1e21; pod templates do not contain such numbers.
    """
    out = msgspec.json.encode(value, order="sorted")
    for raw, escaped in _GO_JSON_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def _go_slots(spec: JsonObject) -> Iterator[tuple[JsonObject, str, Any]]:
    """The struct-typed members of a ``core/v1.PodSpec`` that Go's ``encoding/json`` always writes.

    Yields (object, key, zero value) for each place one can occur in ``spec``:

    * ``Container.Resources`` (``ResourceRequirements``, ``json:"resources,omitempty"``), for containers,
      init containers and ephemeral containers: ``{}``;
    * ``ResourceFieldSelector.Divisor`` (``resource.Quantity``, a struct, ``json:"divisor,omitempty"``) in
      an env ``valueFrom.resourceFieldRef`` and in downwardAPI volume items (also projected): ``"0"``;
    * ``GRPCAction.Service`` (``*string`` tagged ``json:"service"`` without omitempty) of a container's
      liveness, readiness and startup probes: ``null``.

    ``omitempty`` never drops a struct, and a missing or ``null`` member decodes to the zero value, so
    the decoded template Kruise's ``getPatch`` re-encodes has them whatever the stored bytes say.
    """
    for list_key in _CONTAINER_LISTS:
        for c in _dicts(spec.get(list_key)):
            yield c, "resources", {}
            for probe_key in _PROBES:
                grpc = _get(c, probe_key, "grpc")
                if isinstance(grpc, dict):
                    yield grpc, "service", None
    for ref in _resource_field_refs(spec):
        yield ref, "divisor", "0"


_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {e: s for s, e in _DEC_SUFFIXES.items()}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_BY_EXP = {e: s for s, e in _BIN_SUFFIXES.items()}
_QUANTITY_RE = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(.*)")
_EXPONENT_RE = re.compile(r"[eE]([+-]?\d+)")
_INT64_MAX = 2**63 - 1


def parse_quantity(text: str) -> tuple[int, str] | None:
    """``resource.ParseQuantity``: the value in nano units (rounded up, away from zero, as Go does) and
    the suffix kind (``"dec"``, ``"bin"`` or ``"exp"``); None when Go would refuse it or saturate."""
    m = _QUANTITY_RE.fullmatch(text.strip())
    if m is None or (not m.group(2) and not m.group(3) and "." not in text):
        return None
    sign, whole, frac, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    number = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    if suffix in _DEC_SUFFIXES:
        fmt, number = "dec", number * Fraction(10) ** _DEC_SUFFIXES[suffix]
    elif suffix in _BIN_SUFFIXES:
        fmt, number = "bin", number * 2 ** _BIN_SUFFIXES[suffix]
    elif (e := _EXPONENT_RE.fullmatch(suffix)) is not None:
        fmt, number = "exp", number * Fraction(10) ** int(e.group(1))
    else:
        return None
    if number > _INT64_MAX:
        return None
    nanos = math.ceil(number * 10**9)  # ParseQuantity rounds up (away from zero) to nano
    return (-nanos if sign == "-" else nanos), fmt


def format_quantity(nanos: int, fmt: str) -> str | None:
    """``Quantity.String`` of a value in nano units with suffix kind ``fmt`` (``CanonicalizeBytes``);
    None for an exponent no suffix spells."""
    if nanos == 0:
        return "0"
    negative, nanos = nanos < 0, abs(nanos)
    if fmt == "bin" and nanos >= 1024 * 10**9 and nanos % 10**9 == 0:
        mantissa, exp = nanos // 10**9, 0
        while mantissa % 1024 == 0 and exp < 60:
            mantissa, exp = mantissa // 1024, exp + 10
        return f"{'-' if negative else ''}{mantissa}{_BIN_BY_EXP.get(exp, '')}"
    mantissa, exp = nanos, -9
    while mantissa % 10 == 0:
        mantissa, exp = mantissa // 10, exp + 1
    while exp % 3:
        mantissa, exp = mantissa * 10, exp - 1
    if fmt == "exp":
        suffix = f"e{exp}" if exp else ""
    elif exp in _DEC_BY_EXP:
        suffix = _DEC_BY_EXP[exp]
    else:
        return None
    return f"{'-' if negative else ''}{mantissa}{suffix}"


def canonical_quantity(value: Any) -> Any:
    """A ``resource.Quantity`` as Go re-encodes it after decoding (``Quantity.MarshalJSON``), else ``value``.

    k8s.io/apimachinery ``pkg/api/resource/quantity.go``: ``ParseQuantity`` keeps the suffix kind
    (decimal SI, binary SI, decimal exponent) and rounds up to nano precision; ``CanonicalizeBytes``
    writes the largest suffix that keeps the mantissa an integer (exponents in steps of 3, binary in
    steps of 1024), binary SI below 1024 or with a fraction as decimal SI, zero as ``"0"``. So
    ``"0.5"`` is ``"500m"``, ``"1024Mi"`` is ``"1Gi"``, ``1`` (a JSON number) is ``"1"``. Values this does
    not understand or beyond int64 (where Go saturates) are returned unchanged.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, float):
        text = format(Decimal(repr(value)), "f")  # the JSON number as written, positional
    else:
        text = str(value)
    parsed = parse_quantity(text)
    if parsed is None:
        return value
    out = format_quantity(*parsed)
    return value if out is None else out


def _quantity_slots(spec: JsonObject) -> Iterator[tuple[JsonObject, str]]:
    """(object, key) of every ``resource.Quantity`` in ``spec``: resource lists, sizeLimit, divisor."""
    lists: list[Any] = [spec.get("overhead")]
    for list_key in _CONTAINER_LISTS:
        lists += [_get(c, "resources", "limits") for c in _dicts(spec.get(list_key))]
        lists += [_get(c, "resources", "requests") for c in _dicts(spec.get(list_key))]
    lists += [_get(spec, "resources", "limits"), _get(spec, "resources", "requests")]
    for volume in _dicts(spec.get("volumes")):
        empty_dir = volume.get("emptyDir")
        if isinstance(empty_dir, dict) and "sizeLimit" in empty_dir:
            yield empty_dir, "sizeLimit"
        claim_resources = _get(volume, "ephemeral", "volumeClaimTemplate", "spec", "resources")
        lists += [_get(claim_resources, "limits"), _get(claim_resources, "requests")]
    for resource_list in lists:
        if isinstance(resource_list, dict):
            for key in resource_list:
                yield resource_list, key
    for ref in _resource_field_refs(spec):
        if "divisor" in ref:
            yield ref, "divisor"


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _resource_field_refs(spec: JsonObject) -> Iterator[JsonObject]:
    """Every ``resourceFieldRef`` of ``spec``: container env and downwardAPI volume items (also projected)."""
    for list_key in _CONTAINER_LISTS:
        for c in _dicts(spec.get(list_key)):
            for env in _dicts(c.get("env")):
                ref = _get(env, "valueFrom", "resourceFieldRef")
                if isinstance(ref, dict):
                    yield ref
    for volume in _dicts(spec.get("volumes")):
        sources = [volume.get("downwardAPI")]
        sources += [_get(src, "downwardAPI") for src in _dicts(_get(volume, "projected", "sources"))]
        for source in sources:
            for item in _dicts(_get(source, "items")):
                if isinstance(item.get("resourceFieldRef"), dict):
                    yield item["resourceFieldRef"]


def _dicts(value: Any) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _missing(obj: JsonObject, key: str, zero: Any) -> bool:
    return key not in obj if zero is None else obj.get(key) is None


def go_pod_spec(spec: JsonObject) -> JsonObject:
    """``spec`` as Go re-encodes a decoded PodSpec: every member of :func:`_go_slots` present, every
    quantity canonical (:func:`canonical_quantity`).

    Present values are kept, so the function is idempotent and returns Kruise-written revision data
    unchanged (the same object when nothing is missing).
    """
    if not any(_missing(obj, key, zero) for obj, key, zero in _go_slots(spec)) and all(
        canonical_quantity(obj[key]) == obj[key] for obj, key in _quantity_slots(spec)
    ):
        return spec
    out = copy.deepcopy(spec)
    for obj, key, zero in list(_go_slots(out)):
        if _missing(obj, key, zero):
            obj[key] = copy.deepcopy(zero)
    for obj, key in list(_quantity_slots(out)):
        obj[key] = canonical_quantity(obj[key])
    return out


def without_go_zeros(spec: JsonObject) -> JsonObject:
    """The inverse of :func:`go_pod_spec`: the members of :func:`_go_slots` dropped where they are zero.

    To Go a zero and a missing member are the same value. Dropping them makes a template read from
    Kruise-written data compare equal, field by field, to one kruisebus wrote before it emitted them
    (Kruise's in-place diff compares the decoded templates, where they are equal).
    """
    if not any(key in obj and obj[key] == zero for obj, key, zero in _go_slots(spec)):
        return spec
    out = copy.deepcopy(spec)
    for obj, key, zero in list(_go_slots(out)):
        if key in obj and obj[key] == zero:
            del obj[key]
    return out


def go_template(template: PodTemplateSpec) -> JsonObject:
    """A PodTemplateSpec as Go re-encodes the decoded struct (what a controller's ``getPatch`` keeps).

    Metadata always has ``"creationTimestamp": null`` (empty labels/annotations/finalizers are omitted)
    and the spec is :func:`go_pod_spec` of the stored one.
    """
    rendered: JsonObject = msgspec.to_builtins(template)
    metadata: JsonObject = dict(rendered.get("metadata") or {})
    metadata["creationTimestamp"] = None
    spec: JsonObject = msgspec.json.decode(_go_pod_spec_json(msgspec.json.encode(template.spec)))
    return {"metadata": metadata, "spec": spec}


@lru_cache(maxsize=1024)
def _go_pod_spec_json(raw: bytes) -> bytes:
    """:func:`go_pod_spec` on JSON, memoised: a workload's template rarely changes between passes."""
    return msgspec.json.encode(go_pod_spec(msgspec.json.decode(raw)))


def stored_template(template: JsonObject) -> PodTemplateSpec:
    """The inverse of :func:`go_template` (plus a ``$patch`` key): the PodTemplateSpec a revision stores.

    ``creationTimestamp`` and ``$patch`` are dropped and the spec loses the zero members Go writes
    (:func:`without_go_zeros`), so it compares equal to the template it was made from.
    """
    clean = {k: v for k, v in template.items() if k != PATCH_KEY}
    metadata = clean.get("metadata")
    if isinstance(metadata, dict):
        clean["metadata"] = {k: v for k, v in metadata.items() if k != "creationTimestamp"}
    spec = clean.get("spec")
    if isinstance(spec, dict):
        clean["spec"] = without_go_zeros(go_pod_spec(spec))
    return msgspec.convert(clean, type=PodTemplateSpec)
