"""Rendering the Helm chart with Helm's own library (helm-python-sdk), for the chart tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (a dev dependency) is not installed")

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "kruisebus"
EXTERNAL = {"bus": {"url": "nats://nats.nats.svc:4222"}}
NAMESPACE = "kruisebus-system"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered object (NATS disabled, an external URL unless `values` says otherwise)."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(merge(EXTERNAL, values or {}), name="kb", namespace=NAMESPACE, is_install=True)
    return [d for path, text in sorted(out.items()) if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]


def crds() -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        return [d for crd in chart.crds for d in yaml.safe_load_all(crd["data"]) if d]


def crd_files() -> list[str]:
    with helm.Chart.load(str(CHART)) as chart:
        return sorted(crd["name"] for crd in chart.crds)


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(merge(EXTERNAL, values or {}), name="kb", namespace=NAMESPACE, is_install=True)
    return next(text for path, text in out.items() if path.endswith("NOTES.txt"))


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


ALL_ON = {"nodeAgent": {"enabled": True}, "prober": {"enabled": True}, "webhook": {"podHook": True}}
