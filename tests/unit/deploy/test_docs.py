"""The install and operations docs stay true to the code: the values reference is what the schema says,
and every metric the services export is explained."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from services import metrics

ROOT = Path(__file__).resolve().parents[3]


def _values_reference():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("values_reference", ROOT / "tools" / "values_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_values_reference_in_install_md_is_current() -> None:
    ref = _values_reference()
    doc = (ROOT / "docs" / "install.md").read_text()
    assert ref.render(doc) == doc, "docs/install.md's values reference is stale: run python tools/values_reference.py"


def test_values_reference_lists_every_schema_key() -> None:
    ref = _values_reference()
    text = ref.reference()
    for key in ("featureGates", "manager.image.repository", "bus.url", "nats.enabled", "webhook.failurePolicy",
                "nodeAgent.enabled", "prober.enabled", "otel.endpoint", "metrics.port"):
        assert f"| `{key}` |" in text


def test_every_metric_is_explained_in_operations_md() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    for metric in metrics.ALL:
        (family,) = metric.describe()
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` |" in doc, f"{name} is not described in docs/operations.md"
