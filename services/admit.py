"""`kruisebus admit POD.yaml --with FILE`: the pod as the pod webhook would admit it, without a cluster.

A dry run of SidecarSet injection for users: FILE holds what `kubectl get -o yaml` prints of the
SidecarSets, their ControllerRevisions (Kruise's namespace) and Namespaces (for namespace selectors;
a namespace not in FILE is taken to exist with only its `kubernetes.io/metadata.name` label, as the
webhook assumes). It runs the same pure code as the webhook (`services.planner.sidecarset.inject`), after
the SidecarSet defaulting the webhook applies when SidecarSets are written. Prints the pod as YAML and
exits 0, or prints the denial and exits 1; 2 for unreadable input.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml

from schemas.constants import DEFAULT_KRUISE_NAMESPACE, KIND_SIDECARSET
from schemas.kube import ControllerRevision
from schemas.sidecarset import SidecarSet
from schemas.timefmt import format_time
from services.planner.sidecarset.defaults import default_sidecarset
from services.planner.sidecarset.inject import InjectError, InjectionView, inject


def _docs(path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            out.extend(d for d in doc["items"] if isinstance(d, dict))
        elif isinstance(doc, dict):
            out.append(doc)
    return out


def admit(pod: dict[str, Any], objects: list[dict[str, Any]], *, now: str, seed: int | None = None,
          kruise_namespace: str = DEFAULT_KRUISE_NAMESPACE) -> tuple[int, str]:
    """(exit code, output) for one pod against the SidecarSets, revisions and Namespaces in `objects`."""
    sets: list[SidecarSet] = []
    revisions: list[ControllerRevision] = []
    namespaces: dict[str, dict[str, str]] = {}
    for i, doc in enumerate(objects):
        kind = doc.get("kind")
        try:
            if kind == KIND_SIDECARSET:
                sets.append(msgspec.convert(default_sidecarset(doc), SidecarSet))
            elif kind == "ControllerRevision":
                revisions.append(msgspec.convert(doc, ControllerRevision))
            elif kind == "Namespace":
                meta = doc.get("metadata") or {}
                namespaces[str(meta.get("name", ""))] = dict(meta.get("labels") or {})
        except msgspec.ValidationError as e:
            return 2, f"document {i} ({kind}): {e}"
    view = InjectionView(sidecarsets=sets, revisions=revisions, namespaces=namespaces,
                         kruise_namespace=kruise_namespace, assume_namespaces=True)
    rng = random.Random(seed)
    try:
        out = inject(pod, view, namespace=str((pod.get("metadata") or {}).get("namespace") or "default"), now=now,
                     draw=rng.random)
    except InjectError as e:
        return 1, f'admission webhook "mpod.kb.io" denied the request: {e}'
    return 0, yaml.safe_dump(out if out is not None else pod, sort_keys=False)


def main(pod_file: str, with_file: str | None, *, seed: int | None, now: str | None) -> int:
    try:
        pods = _docs(pod_file)
        objects = _docs(with_file) if with_file else []
    except (OSError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(pods) != 1 or pods[0].get("kind") != "Pod":
        print(f"error: {pod_file}: expected exactly one Pod", file=sys.stderr)
        return 2
    code, text = admit(pods[0], objects, now=now or format_time(datetime.now(UTC)), seed=seed)
    (sys.stdout if code == 0 else sys.stderr).write(text if text.endswith("\n") else text + "\n")
    return code


__all__ = ["admit", "main"]
