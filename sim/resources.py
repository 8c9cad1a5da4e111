"""The kinds the embedded API server serves: built-in types plus every CRD in the chart's crds/ dir."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
import yaml

CRD_DIR = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "kruisebus" / "crds"

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    scale: dict[str, str] | None = None  # specReplicasPath / statusReplicasPath / labelSelectorPath
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    custom: bool = False  # served from a CRD (merge/json patch only, generation on spec change)
    strategic: bool = False  # accepts strategic merge patches (built-in types)
    extra_subresources: tuple[str, ...] = ()  # e.g. ("binding",) for pods
    generation: bool = False  # a built-in kind with metadata.generation (bumped on spec changes): Jobs
    # the CRD's storage version when it serves more than one: every version shares the storage
    # version's objects, and one at another version is converted (sim/conversion.py); "" = this one
    storage_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        """`pods`, `clonesets.apps.kruise.io`: how Kubernetes names a resource in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def storage_key(self) -> tuple[str, str, str]:
        """The key of the bucket holding this resource's objects (the storage version's)."""
        return (self.group, self.storage_version or self.version, self.plural)

    @property
    def converted(self) -> bool:
        """Served at a version other than the stored one: reads and writes go through conversion."""
        return bool(self.storage_version) and self.storage_version != self.version

    def subresources(self) -> list[str]:
        subs = list(self.extra_subresources)
        if self.status_subresource:
            subs.append("status")
        if self.scale:
            subs.append("scale")
        return subs


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType(
            "",
            "v1",
            "Namespace",
            "namespaces",
            "namespace",
            namespaced=False,
            short_names=["ns"],
            status_subresource=True,
            strategic=True,
        ),
        ResourceType(
            "",
            "v1",
            "Pod",
            "pods",
            "pod",
            short_names=["po"],
            categories=["all"],
            status_subresource=True,
            strategic=True,
            extra_subresources=("binding",),
        ),
        ResourceType(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            short_names=["pvc"],
            status_subresource=True,
            strategic=True,
        ),
        ResourceType(
            "",
            "v1",
            "Node",
            "nodes",
            "node",
            namespaced=False,
            short_names=["no"],
            status_subresource=True,
            strategic=True,
        ),
        ResourceType("", "v1", "Event", "events", "event", short_names=["ev"], strategic=True),
        ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", short_names=["cm"], strategic=True),
        ResourceType("", "v1", "Secret", "secrets", "secret", strategic=True),
        ResourceType(
            "apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", strategic=True
        ),
        ResourceType(
            "batch",
            "v1",
            "Job",
            "jobs",
            "job",
            categories=["all"],
            status_subresource=True,
            strategic=True,
            generation=True,
        ),
        ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", strategic=True),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            namespaced=False,
            short_names=["crd", "crds"],
            status_subresource=True,
            strategic=True,
        ),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), "") if len(versions) > 1 else ""
    for v in versions:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=v["name"],
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                status_subresource="status" in subs,
                scale=subs.get("scale"),
                printer_columns=list(v.get("additionalPrinterColumns") or []),
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
                storage_version=storage,
            )
        )
    return out


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' order of API versions, highest first when sorted by this key: GA (v2 before v1),
    then beta, then alpha (higher numbers first within each), then any other name. Discovery lists a
    group's versions in this order and clients use the first that serves a resource, so kubectl reads
    a resource served as v1alpha1 and v1beta1 at v1beta1."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (3, 0, 0)
    major, level, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -major, -minor)


def load_crd_files(directory: Path = CRD_DIR) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in the YAML files of `directory` (sorted by file name)."""
    crds: list[dict[str, Any]] = []
    if not directory.is_dir():
        return crds
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml"):
            continue
        docs = _parse_yaml(str(path), path.stat().st_mtime_ns)
        crds.extend(msgspec.json.decode(msgspec.json.encode(d)) for d in docs)  # callers get their own copy
    return crds


@lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int) -> list[dict[str, Any]]:
    """The CRD documents of one file, parsed once per version of the file (every Store loads them)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as f:
        docs = list(yaml.load_all(f, Loader=loader))
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
