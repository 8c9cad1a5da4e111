"""Hostile input for the fuzz properties: a valid object of every served kind, and strategies that break it.

Every custom resource kruisebus serves (a row of `schemas.kinds` with an admission endpoint in
`services.webhook.endpoints`) has one small valid sample here; `hostile_object(kind)` takes it and
replaces one value somewhere in the tree with something an attacker or a typo would write (a wrong
type, a huge number, deep nesting, unicode, a 1 MB string) or adds an unknown field. A new kind is one
more entry in `SAMPLES`: `test_every_served_kind_has_a_sample` fails until it has one.

The example budget is fixed and derandomized (the same examples on every run, so CI is reproducible
and fast); `KRUISEBUS_FUZZ_EXAMPLES=N` raises every budget to N with a fresh random seed (the long run
by hand, docs/reliability.md "Fuzzing").
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from schemas.kinds import (
    ADVANCED_CRON_JOB,
    BROADCAST_JOB,
    CLONESET,
    DAEMONSET,
    IMAGE_PULL_JOB,
    NODE_IMAGE,
    PODPROBEMARKER,
    SIDECARSET,
    Kind,
)
from services.webhook.endpoints import ENDPOINTS

LONG_EXAMPLES = int(os.environ.get("KRUISEBUS_FUZZ_EXAMPLES", "0") or 0)
MB = 1 << 20


def budget(examples: int) -> settings:
    """`examples` derandomized examples in CI; `KRUISEBUS_FUZZ_EXAMPLES` of random ones by hand."""
    return settings(
        max_examples=LONG_EXAMPLES or examples,
        derandomize=not LONG_EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
        print_blob=True,
    )


def _meta(name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1", "generation": 1}
    if namespaced:
        meta["namespace"] = "default"
    return meta


_TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}

SAMPLES: dict[Kind, dict[str, Any]] = {
    CLONESET: {"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": _TEMPLATE,
                        "updateStrategy": {"type": "InPlaceIfPossible", "partition": 1, "maxUnavailable": "20%",
                                           "maxSurge": 0}}},
    IMAGE_PULL_JOB: {"spec": {"image": "nginx:1.20", "parallelism": 2,
                              "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 60},
                              "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 30}}},
    NODE_IMAGE: {"spec": {"images": {"nginx": {"tags": [{"tag": "1.20", "version": 1, "createdAt": "2026-01-01T00:00:00Z",
                                                         "pullPolicy": {"backoffLimit": 3, "ttlSecondsAfterFinished": 300}}]}}}},
    PODPROBEMARKER: {"spec": {"selector": {"matchLabels": {"app": "web"}}, "probes": [{
        "name": "idle", "containerName": "main", "podConditionType": "game.kruise.io/idle",
        "probe": {"exec": {"command": ["/idle.sh"]}, "periodSeconds": 2, "timeoutSeconds": 1},
        "markerPolicy": [{"state": "Succeeded", "labels": {"idle": "true"}}]}]}},
    ADVANCED_CRON_JOB: {"spec": {"schedule": "*/5 * * * *", "timeZone": "Asia/Shanghai",
                                 "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 30,
                                 "template": {"broadcastJobTemplate": {"spec": {
                                     "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                           "restartPolicy": "Never"}}}}}}},
    BROADCAST_JOB: {"spec": {"parallelism": 2, "completionPolicy": {"type": "Always"},
                             "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                   "restartPolicy": "Never"}}}},
    DAEMONSET: {"spec": {"selector": {"matchLabels": {"app": "agent"}},
                         "template": {"metadata": {"labels": {"app": "agent"}},
                                      "spec": {"containers": [{"name": "agent", "image": "fluentd:v1.16"}]}},
                         "updateStrategy": {"type": "RollingUpdate",
                                            "rollingUpdate": {"rollingUpdateType": "InPlaceIfPossible",
                                                              "maxUnavailable": 2, "partition": 1}}}},
    SIDECARSET: {"spec": {"selector": {"matchLabels": {"app": "web"}},
                          "containers": [{"name": "log-agent", "image": "busybox:1.36",
                                          "command": ["sleep", "infinity"]}],
                          "updateStrategy": {"type": "RollingUpdate", "partition": "90%", "maxUnavailable": 1}}},
}


def served_kinds() -> list[Kind]:
    """Every custom resource kind the webhook admits (from its endpoint table), in table order."""
    from schemas.kinds import KINDS

    resources = {e.resource for e in ENDPOINTS}
    return [k for k in KINDS if k.resource is not None and k.resource in resources and k.resource.group]


def sample(kind: Kind) -> dict[str, Any]:
    body = copy.deepcopy(SAMPLES[kind])
    assert kind.resource is not None
    return {"apiVersion": kind.api_version, "kind": kind.kind,
            "metadata": _meta(kind.kind.lower(), kind.resource.namespaced), **body}


# --- hostile values ---------------------------------------------------------------------------------

def _nested(depth: int) -> Any:
    v: Any = "bottom"
    for i in range(depth):
        v = [v] if i % 2 else {"n": v}
    return v


HUGE_NUMBERS = st.sampled_from([2**31, -2**31 - 1, 2**53 + 1, 2**63, -2**63 - 1, 2**64, 10**30, -(10**40),
                                1e308, -1e308, 5e-324, 0.5, -0.0])
UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40) | \
    st.sampled_from(["\u202e\u0000", "ﬀ𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\ufeff", "..", "a" * 300, "%00", "\r\nX-Injected: 1",
                     "🚀" * 20, "\\u0000"])
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), HUGE_NUMBERS, UNICODE,
    st.just("x" * MB),  # a 1 MB string
    st.integers(50, 400).map(_nested),  # deep nesting
    st.lists(st.integers() | st.text(max_size=5), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=5), max_size=4),
)
KINDS_OF_DAMAGE = ("replace", "unknown-field", "drop")


def paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path in a JSON tree (dict keys and list indexes), the root excluded."""
    out: list[tuple[str | int, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out.extend(paths(v, (*prefix, i)))
    return out


def dotted(path: tuple[str | int, ...]) -> str:
    """`("spec", "containers", 0, "image")` -> `spec.containers[0].image` (Kubernetes' field path)."""
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text


def _apply(obj: dict[str, Any], path: tuple[str | int, ...], damage: str, value: Any) -> None:
    parent: Any = obj
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if damage == "replace":
        parent[last] = value
    elif damage == "drop":
        del parent[last]
    else:  # an unknown field next to a known one (or inside it, when it is an object)
        target = parent[last] if isinstance(parent[last], dict) else parent
        if isinstance(target, dict):
            target["xUnknownFieldΩ"] = value
        else:
            parent[last] = value


@st.composite
def hostile_object(draw: Callable[..., Any], kind: Kind) -> tuple[dict[str, Any], str]:
    """(a broken object of `kind`, the field path that was broken)."""
    obj = sample(kind)
    candidates = [p for p in paths(obj) if p[0] in ("spec", "metadata") and p not in (("metadata", "name"),)]
    path = draw(st.sampled_from(candidates))
    damage = draw(st.sampled_from(KINDS_OF_DAMAGE))
    _apply(obj, path, damage, draw(HOSTILE))
    return obj, dotted(path)


__all__ = ["HOSTILE", "MB", "SAMPLES", "budget", "dotted", "hostile_object", "sample", "served_kinds"]
