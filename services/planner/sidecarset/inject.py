"""Sidecar injection at pod creation: the pod as Kruise's pod webhook returns it.

Kruise's `pkg/webhook/pod/mutating/sidecarset.go` (sidecarsetMutatingPod, buildSidecars,
getSuitableRevisionSidecarSet, mergeSidecarContainers). Pure: the caller hands in the SidecarSets,
revisions and namespace labels it knows, the random draw of a Partial injection and the time; the
webhook and `kruisebus admit` both run this. Any error rejects the pod, as Kruise answers 500.

HotUpgrade sidecars are injected as Kruise's pair `X-1` (working) / `X-2` (the empty image);
a sidecar's `resourcesPolicy` sets its resources from the pod's containers (`resources.py`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX,
    ANNOTATION_SIDECARSET_VERSION_PREFIX,
    ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER,
    ENV_SIDECAR_INJECTED,
    ENV_SIDECARSET_VERSION,
    ENV_SIDECARSET_VERSION_ALT,
    LABEL_NAMESPACE_NAME,
    REVISION_POLICY_PARTIAL,
    SHARE_VOLUME_ENABLED,
    SIDECAR_BEFORE_APP,
    SIDECAR_HOT_UPGRADE,
)
from schemas.kube import ControllerRevision, JsonObject
from schemas.sidecarset import SidecarSet, sidecar_fields
from services.planner.kit.selectors import conversion_error, matches
from services.planner.sidecarset.matching import is_canary, pod_matches
from services.planner.sidecarset.metadata import PatchError, patch_pod_metadata
from services.planner.sidecarset.resources import ExpressionError, policy_of, sidecar_resources
from services.planner.sidecarset.revisions import find_specific, historical, not_found_message

# the SidecarContainer members that are not corev1.Container's: not copied into the pod
_SIDECAR_ONLY: Final = ("podInjectPolicy", "upgradeStrategy", "shareVolumePolicy", "shareVolumeDevicePolicy",
                        "transferEnv", "resourcesPolicy")
_SUBPATH_ENV: Final = re.compile(r"\$\([^)]+\)")
_FIELD_PATH: Final = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class InjectError(ValueError):
    """Injection failed: the pod is rejected with this message."""


class UpgradeSpec(msgspec.Struct, omit_defaults=True):
    """One entry of `kruise.io/sidecarset-hash` (Kruise's SidecarSetUpgradeSpec, member order kept)."""

    updateTimestamp: str | None = None  # noqa: N815 - the wire name
    hash: str = ""
    sidecarSetName: str = ""  # noqa: N815
    sidecarList: list[str] | None = None  # noqa: N815
    controllerRevision: str = ""  # noqa: N815


_HASHES = msgspec.json.Decoder(dict[str, UpgradeSpec])
_LEGACY = msgspec.json.Decoder(dict[str, str])


def read_hashes(pod_name: str, namespace: str, annotations: Mapping[str, str], key: str) -> dict[str, UpgradeSpec]:
    """A pod's hash annotation (legacy map of strings accepted); unparsable raises InjectError."""
    raw = annotations.get(key, "")
    if not raw:
        return {}
    try:
        return dict(_HASHES.decode(raw))
    except (msgspec.DecodeError, msgspec.ValidationError):
        try:
            return {k: UpgradeSpec(hash=v, sidecarSetName=k) for k, v in _LEGACY.decode(raw).items()}
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise InjectError(f"pod({namespace}/{pod_name}) invalid annotations[{key}] value {raw}, "
                              f"unmarshal failed: {e}") from None


def encode_hashes(hashes: Mapping[str, UpgradeSpec]) -> str:
    """Go's `json.Marshal` of the map: keys sorted, members in declaration order, HTML-escaped."""
    out = msgspec.json.encode({k: hashes[k] for k in sorted(hashes)})
    for raw, escaped in ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026")):
        out = out.replace(raw, escaped)
    return out.decode()


def encode_json_map(value: Mapping[str, str]) -> str:
    """Go's `json.Marshal` of a map of strings (sorted keys, compact)."""
    return msgspec.json.encode({k: value[k] for k in sorted(value)}).decode()


@dataclass
class InjectionView:
    """What injection reads besides the pod: the SidecarSets, their revisions (in Kruise's namespace)
    and the labels of each Namespace (a namespace missing here matches no namespace selector)."""

    sidecarsets: Sequence[SidecarSet] = ()
    revisions: Sequence[ControllerRevision] = ()
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    kruise_namespace: str = "kruise-system"
    # True: a namespace not in `namespaces` exists with only its `kubernetes.io/metadata.name` label (a
    # view that does not follow Namespace objects); False: it does not exist (Kruise's informer view)
    assume_namespaces: bool = False

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        labels = self.namespaces.get(name)
        if labels is None and self.assume_namespaces:
            return {LABEL_NAMESPACE_NAME: name}
        return labels


def _is_partial_percent(value: object) -> float | None:
    if isinstance(value, str) and value.endswith("%"):
        try:
            return float(value[:-1])
        except ValueError:
            raise InjectError(f"invalid partition {value}") from None
    if isinstance(value, str):
        raise InjectError(f"invalid partition {value}")
    return None


def suitable_version(ss: SidecarSet, pod_labels: Mapping[str, str], revisions: Iterable[ControllerRevision],
                     namespace: str, draw: Callable[[], float]) -> SidecarSet:
    """`getSuitableRevisionSidecarSet`: latest, or the historical version `injectionStrategy.revision` names."""
    wanted = ss.spec.injection_strategy.revision
    if wanted is None or (wanted.revision_name is None and wanted.custom_version is None):
        return ss
    rev = find_specific(ss, revisions, namespace)
    if rev is None:
        raise InjectError(not_found_message(ss))
    specific = historical(ss, rev)
    strategy = ss.spec.update_strategy
    if strategy.paused:
        return specific
    if wanted.policy == REVISION_POLICY_PARTIAL:
        if strategy.selector is not None:
            problem = conversion_error(strategy.selector)
            if problem is not None:
                raise InjectError(problem)
            if not matches(strategy.selector, pod_labels):
                return specific
        percent = _is_partial_percent(strategy.partition)
        if percent is None:
            return ss
        return specific if draw() <= percent / 100 else ss
    return specific


def _env_list(container: JsonObject) -> list[JsonObject]:
    env = container.get("env")
    return [e for e in env if isinstance(e, dict)] if isinstance(env, list) else []


def _merge_env(original: list[JsonObject], extra: Iterable[JsonObject]) -> list[JsonObject]:
    names = {e.get("name") for e in original}
    out = list(original)
    for e in extra:
        if e.get("name") not in names:
            out.append(e)
            names.add(e.get("name"))
    return out


def _transfer_envs(sidecar: JsonObject, pod: JsonObject) -> list[JsonObject]:
    envs_in_pod: dict[str, JsonObject] = {}
    for c in pod.get("spec", {}).get("containers") or []:
        for e in _env_list(c):
            envs_in_pod[f"{c.get('name')}/{e.get('name')}"] = e
    meta = pod.get("metadata") or {}
    out: list[JsonObject] = []
    for t in sidecar_fields(sidecar).transfer_env:
        names = sorted({n for n in [t.env_name, *t.env_names] if n})
        source = t.source_container_name
        ref = t.source_container_name_from.field_ref if t.source_container_name_from else None
        if ref is not None:
            m = _FIELD_PATH.match(ref.field_path)
            if m is None:
                continue
            value = (meta.get(m.group(1)) or {}).get(m.group(2))
            if value is None:
                continue
            source = value
        for n in names:
            env = envs_in_pod.get(f"{source}/{n}")
            if env is not None:
                out.append(env)
    return out


def _is_injected(container: JsonObject) -> bool:
    return any(e.get("name") == ENV_SIDECAR_INJECTED and e.get("value") == "true" for e in _env_list(container))


def _shared_mounts(sidecar: JsonObject, pod: JsonObject) -> tuple[list[JsonObject], list[JsonObject]]:
    """`GetInjectedVolumeMountsAndEnvs`: every app container mount (and the envs its subPathExpr names)."""
    if sidecar_fields(sidecar).share_volume_policy.type != SHARE_VOLUME_ENABLED:
        return [], []
    mounts: list[JsonObject] = []
    envs: list[JsonObject] = []
    for app in pod.get("spec", {}).get("containers") or []:
        if not isinstance(app, dict) or _is_injected(app):
            continue
        by_name = {e.get("name"): e for e in _env_list(app)}
        for mount in app.get("volumeMounts") or []:
            mounts.append(mount)
            for ref in _SUBPATH_ENV.findall(str(mount.get("subPathExpr") or "")):
                env = by_name.get(ref[2:-1])
                if env is not None:
                    envs.append(env)
    return mounts, envs


def _merge_paths(own: list[JsonObject], extra: list[JsonObject], key: str, taken: set[Any]) -> list[JsonObject]:
    """`own`, then each of `extra` whose `key` (mountPath, devicePath) is not taken yet."""
    out = list(own)
    for item in extra:
        if item.get(key) not in taken:
            out.append(item)
            taken.add(item.get(key))
    return out


def _merge_mounts(container: JsonObject, extra: list[JsonObject]) -> list[JsonObject]:
    own = [m for m in container.get("volumeMounts") or [] if isinstance(m, dict)]
    taken = {m.get("mountPath") for m in own} | {d.get("devicePath") for d in container.get("volumeDevices") or []}
    return _merge_paths(own, extra, "mountPath", taken)


def _shared_devices(sidecar: JsonObject, pod: JsonObject) -> list[JsonObject]:
    """`GetInjectedVolumeDevices`: every app container's volumeDevices (`shareVolumeDevicePolicy` enabled)."""
    policy = sidecar_fields(sidecar).share_volume_device_policy
    if policy is None or policy.type != SHARE_VOLUME_ENABLED:
        return []
    return [d for app in pod.get("spec", {}).get("containers") or []
            if isinstance(app, dict) and not _is_injected(app)
            for d in app.get("volumeDevices") or [] if isinstance(d, dict)]


def _merge_devices(container: JsonObject, extra: list[JsonObject]) -> list[JsonObject]:
    """`MergeVolumeDevices`: appended unless the devicePath is one of the container's device or mount paths."""
    own = [d for d in container.get("volumeDevices") or [] if isinstance(d, dict)]
    taken = {d.get("devicePath") for d in own} | {m.get("mountPath") for m in container.get("volumeMounts") or []}
    return _merge_paths(own, extra, "devicePath", taken)


def _build(sidecar: JsonObject, pod: JsonObject, sidecar_names: set[str]) -> JsonObject:
    """One sidecar as injected: resources from its resourcesPolicy, shared mounts, IS_INJECTED,
    transferred env, shared devices; Kruise-only members dropped later."""
    c = copy.deepcopy(sidecar)
    try:
        policy = policy_of(sidecar)
        if policy is not None:
            c["resources"] = sidecar_resources(policy, pod, sidecar_names)
    except ExpressionError as e:
        raise InjectError(str(e)) from None
    mounts, mount_envs = _shared_mounts(sidecar, pod)
    transfer = _merge_env(_transfer_envs(sidecar, pod), mount_envs)
    merged_mounts = _merge_mounts(c, mounts)
    if merged_mounts:
        c["volumeMounts"] = merged_mounts
    env = [*_env_list(c), {"name": ENV_SIDECAR_INJECTED, "value": "true"}]
    c["env"] = _merge_env(env, transfer)
    merged_devices = _merge_devices(c, _shared_devices(sidecar, pod))
    if merged_devices:
        c["volumeDevices"] = merged_devices
    return c


def _version_env(name: str) -> list[JsonObject]:
    return [{"name": env, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{prefix}{name}']"}}}
            for env, prefix in ((ENV_SIDECARSET_VERSION, ANNOTATION_SIDECARSET_VERSION_PREFIX),
                                (ENV_SIDECARSET_VERSION_ALT, ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX))]


def hot_upgrade_pair(c: JsonObject, empty_image: str, working: dict[str, str],
                     annotations: dict[str, str]) -> list[JsonObject]:
    """`injectHotUpgradeContainers`: `X-1` runs the image, `X-2` the empty image; both read their
    versions from annotations (`X-1` "1"/"0", `X-2` "0"/"1"); `X-1` is recorded as working."""
    base = str(c.get("name"))
    first, second = copy.deepcopy(c), copy.deepcopy(c)
    first["name"], second["name"] = f"{base}-1", f"{base}-2"
    second["image"] = empty_image
    for container in (first, second):
        container["env"] = [*_env_list(container), *_version_env(container["name"])]
    annotations[ANNOTATION_SIDECARSET_VERSION_PREFIX + first["name"]] = "1"
    annotations[ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX + first["name"]] = "0"
    annotations[ANNOTATION_SIDECARSET_VERSION_PREFIX + second["name"]] = "0"
    annotations[ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX + second["name"]] = "1"
    working[base] = first["name"]
    return [first, second]


def _working(annotations: Mapping[str, str]) -> dict[str, str]:
    try:
        value = msgspec.json.decode(annotations.get(ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER) or "{}",
                                    type=dict[str, str])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return dict(value)


def _merge_containers(origins: list[JsonObject], injected: list[tuple[JsonObject, str]]) -> list[JsonObject]:
    """`mergeSidecarContainers`: replace same-named in place, else Before prepended, others appended."""
    index = {str(c.get("name")): i for i, c in enumerate(origins)}
    out = list(origins)
    before: list[JsonObject] = []
    after: list[JsonObject] = []
    for c, policy in injected:
        name = str(c.get("name"))
        if name in index:
            out[index[name]] = c
        elif policy == SIDECAR_BEFORE_APP:
            before.append(c)
        else:
            after.append(c)
    return [*before, *out, *after]


def _strip(c: JsonObject) -> JsonObject:
    return {k: v for k, v in c.items() if k not in _SIDECAR_ONLY}


def inject(pod: JsonObject, view: InjectionView, *, namespace: str, now: str,
           draw: Callable[[], float] = lambda: 1.0, sort_by_name: bool = False) -> JsonObject | None:
    """The injected copy of `pod` (None: nothing to change). `namespace`: the request's namespace,
    used when the pod names none; `draw`: a uniform [0, 1) number per Partial percent choice."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
        return None
    ns = meta.get("namespace") or namespace or "default"
    labels: dict[str, str] = meta.get("labels") or {}
    ns_labels = view.namespace_labels(ns)
    chosen: list[SidecarSet] = []
    bases: set[str] = set()
    for ss in sorted(view.sidecarsets, key=lambda s: s.metadata.name):
        if ss.spec.injection_strategy.paused or not pod_matches(ss, labels, ns_labels):
            continue
        version = suitable_version(ss, labels, view.revisions, view.kruise_namespace, draw)
        canary, base = is_canary(version)
        if canary:
            bases.add(base)
        chosen.append(version)
    chosen = [s for s in chosen if s.metadata.name not in bases]
    if not chosen:
        return None
    out: JsonObject = copy.deepcopy(pod)
    out_meta = out.setdefault("metadata", {})
    annotations: dict[str, str] = dict(out_meta.get("annotations") or {})
    changed = False
    for ss in chosen:
        try:
            changed = patch_pod_metadata(annotations, ss.spec.patch_pod_metadata) or changed
        except PatchError as e:
            raise InjectError(str(e)) from None
    name = str(meta.get("name") or meta.get("generateName") or "")
    hashes = read_hashes(name, ns, annotations, ANNOTATION_SIDECARSET_HASH)
    without = read_hashes(name, ns, annotations, ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE)
    listed = {n for n in annotations.get(ANNOTATION_SIDECARSET_INJECTED_LIST, "").split(",") if n}
    working = _working(annotations)
    hot_annotations: dict[str, str] = {}
    inits: list[tuple[JsonObject, str]] = []
    containers: list[tuple[JsonObject, str]] = []
    secrets: list[dict[str, Any]] = []
    volumes: list[JsonObject] = []
    sidecar_names = {str(c.get("name")) for ss in chosen for c in [*ss.spec.init_containers, *ss.spec.containers]}
    for ss in chosen:
        listed.add(ss.metadata.name)
        by_volume = {str(v.get("name")): v for v in ss.spec.volumes}
        sidecar_list: set[str] = set()
        for c in ss.spec.init_containers:
            f = sidecar_fields(c)
            if f.restart_policy == "Always":
                sidecar_list.add(f.name)
            built = _strip(_build(c, pod, sidecar_names))
            if f.restart_policy == "Always" and f.upgrade_strategy.upgrade_type == SIDECAR_HOT_UPGRADE:
                inits.extend((h, f.pod_inject_policy) for h in hot_upgrade_pair(
                    built, f.upgrade_strategy.hot_upgrade_empty_image, working, hot_annotations))
            else:
                inits.append((built, f.pod_inject_policy))
            volumes.extend(by_volume[str(m.get("name"))] for m in [*(c.get("volumeMounts") or []),
                                                                      *(c.get("volumeDevices") or [])]
                           if str(m.get("name")) in by_volume)
        secrets.extend(msgspec.to_builtins(ss.spec.image_pull_secrets))
        for c in ss.spec.containers:
            f = sidecar_fields(c)
            sidecar_list.add(f.name)
            volumes.extend(by_volume[str(m.get("name"))] for m in [*(c.get("volumeMounts") or []),
                                                                      *(c.get("volumeDevices") or [])]
                           if str(m.get("name")) in by_volume)
            built = _strip(_build(c, pod, sidecar_names))
            if f.upgrade_strategy.upgrade_type == SIDECAR_HOT_UPGRADE:
                containers.extend((h, f.pod_inject_policy) for h in hot_upgrade_pair(
                    built, f.upgrade_strategy.hot_upgrade_empty_image, working, hot_annotations))
            else:
                containers.append((built, f.pod_inject_policy))
        if ss.spec.init_containers or ss.spec.containers:
            names = sorted(sidecar_list)
            hashes[ss.metadata.name] = UpgradeSpec(
                updateTimestamp=now, hash=ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH, ""),
                sidecarSetName=ss.metadata.name, sidecarList=names, controllerRevision=ss.status.latest_revision)
            without[ss.metadata.name] = UpgradeSpec(
                updateTimestamp=now, hash=ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, ""),
                sidecarSetName=ss.metadata.name, sidecarList=names)
    if not inits and not containers:
        if changed:
            out_meta["annotations"] = annotations
            return out
        return None
    spec = out.setdefault("spec", {})
    inits.sort(key=lambda item: str(item[0].get("name")))  # stable, by name
    spec["initContainers"] = _merge_containers(list(spec.get("initContainers") or []), inits)
    if not spec["initContainers"]:
        del spec["initContainers"]
    if sort_by_name:
        containers.sort(key=lambda item: str(item[0].get("name")))
    spec["containers"] = _merge_containers(list(spec.get("containers") or []), containers)
    pod_volumes = list(spec.get("volumes") or [])
    have = {v.get("name") for v in pod_volumes}
    for v in volumes:
        if v.get("name") not in have:
            pod_volumes.append(v)
            have.add(v.get("name"))
    if pod_volumes:
        spec["volumes"] = pod_volumes
    merged_secrets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for s in [*(spec.get("imagePullSecrets") or []), *secrets]:
        if s.get("name") not in seen:
            seen.add(s.get("name"))
            merged_secrets.append(s)
    if merged_secrets:
        spec["imagePullSecrets"] = merged_secrets
    annotations[ANNOTATION_SIDECARSET_HASH] = encode_hashes(hashes)
    annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE] = encode_hashes(without)
    annotations[ANNOTATION_SIDECARSET_INJECTED_LIST] = ",".join(sorted(listed))
    if hot_annotations:
        annotations.update(hot_annotations)
        annotations[ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER] = encode_json_map(working)
    out_meta["annotations"] = annotations
    return out


__all__ = ["InjectError", "InjectionView", "UpgradeSpec", "encode_hashes", "inject", "read_hashes",
           "suitable_version"]
