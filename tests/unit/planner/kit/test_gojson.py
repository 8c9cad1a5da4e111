"""Go's re-encoding of pod templates: `resource.Quantity` canonical forms, from Kubernetes' own tests.

Revision bytes depend on them (a stored ``cpu: 0.5`` is ``"500m"`` in the data Kruise hashes); the
takeover tests in tests/unit/planner/cloneset/test_dropin.py check the whole template.
"""

from __future__ import annotations

import pytest

from services.planner.kit.gojson import canonical_quantity


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        # k8s.io/apimachinery pkg/api/resource/quantity_test.go TestQuantityParseEmit
        ("1Ki", "1Ki"),
        ("1024Mi", "1Gi"),
        ("1000M", "1G"),
        (".001Ki", "1024m"),
        (".000000000001Ki", "2n"),
        # TestQuantityString: the alternate spelling re-emits as the canonical one
        ("307200Ki", "300Mi"),
        ("5000m", "5"),
        ("0.5", "500m"),
        ("0.001T", "1G"),
        ("1080000000n", "1080m"),
        (".001e12", "1e9"),
        ("0.001e0", "1e-3"),
        ("1025", "1025"),
        ("00", "0"),
        # TestQuantityParse values (rounding up to nano; binary with a fraction becomes decimal)
        ("3.001n", "4n"),
        ("0.00000012345", "124n"),
        ("0.5Mi", "512Ki"),
        ("100.035k", "100035"),
        # JSON numbers (TestJSONWhitespace: `1` -> "1") and what is not a quantity
        (1, "1"),
        (0.5, "500m"),
        ("Memory", "Memory"),
    ],
)
def test_canonical_quantity_matches_kubernetes(spelled: object, canonical: object) -> None:
    assert canonical_quantity(spelled) == canonical
