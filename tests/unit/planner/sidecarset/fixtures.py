"""SidecarSets and pods for the SidecarSet unit tests, written as users write them (YAML-shaped dicts)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from schemas.sidecarset import SidecarSet
from services.planner.sidecarset.defaults import default_sidecarset


def sidecarset(name: str, *, containers: list[dict[str, Any]] | None = None,
               init_containers: list[dict[str, Any]] | None = None, selector: dict[str, Any] | None = None,
               defaults: bool = True, **spec: Any) -> SidecarSet:
    raw: dict[str, Any] = {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"selector": selector if selector is not None else {"matchLabels": {"app": "nginx"}},
                 "containers": containers if containers is not None else
                 [{"name": f"{name}-c", "image": f"{name}:v1"}],
                 **({"initContainers": init_containers} if init_containers else {}), **spec},
    }
    if defaults:
        raw = default_sidecarset(raw)
    return msgspec.convert(raw, SidecarSet)


def pod(name: str = "pod-1", *, labels: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None,
        namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return copy.deepcopy({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels if labels is not None else {"app": "nginx"}},
        "spec": {"containers": containers if containers is not None else [{"name": "nginx", "image": "nginx:1"}],
                 **spec},
    })


def names(containers: list[dict[str, Any]] | None) -> list[str]:
    return [str(c["name"]) for c in containers or []]
