"""Kubernetes' pod-level defaults Kruise's webhooks apply, on plain JSON objects.

`apis/apps/defaults/pod.go` and Kubernetes' `SetDefaults_Container`, `SetDefaults_Probe`,
`SetDefaultPodVolumes`: image pull policy, termination message, port protocols, env fieldRefs, probes,
lifecycle handlers, volume sources and modes. Every workload whose objects carry containers or volumes
(a CloneSet's template, a SidecarSet's sidecars) defaults them with these, in place; fields kruisebus
does not model pass through untouched.
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT_TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
DEFAULT_VOLUME_MODE: Final = 0o644  # secret / configMap / downwardAPI / projected defaultMode (420)
DEFAULT_TOKEN_EXPIRATION_SECONDS: Final = 3600

JsonDict = dict[str, Any]


def _dicts(value: object) -> list[JsonDict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def image_tag(image: str) -> str:
    """The tag Kubernetes' ``parsers.ParseImageName`` sees ("latest" when neither tag nor digest)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        return "latest"
    return tag


def default_container(c: JsonDict, *, pull_always: bool) -> None:
    """``SetDefaults_Container`` plus ports, env fieldRefs, probes and lifecycle handlers (pod.go)."""
    if not c.get("imagePullPolicy"):
        if pull_always:
            c["imagePullPolicy"] = "Always"
        else:
            image = c.get("image")
            latest = image_tag(image if isinstance(image, str) else "") == "latest"
            c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = DEFAULT_TERMINATION_MESSAGE_PATH
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for port in _dicts(c.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in _dicts(c.get("env")):
        value_from = env.get("valueFrom")
        if isinstance(value_from, dict) and isinstance(value_from.get("fieldRef"), dict):
            _default_field_ref(value_from["fieldRef"])
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}  # a Go struct field: always marshalled
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_key)
        if isinstance(probe, dict):
            _default_probe(probe)
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            handler = lifecycle.get(hook)
            if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
                _default_http_get(handler["httpGet"])


def _default_field_ref(ref: JsonDict) -> None:
    if not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _default_probe(probe: JsonDict) -> None:
    """``SetDefaults_Probe`` (+ ``SetDefaults_HTTPGetAction`` for an httpGet handler)."""
    for key, default in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = default
    if isinstance(probe.get("httpGet"), dict):
        _default_http_get(probe["httpGet"])


def _default_http_get(action: JsonDict) -> None:
    if not action.get("path"):
        action["path"] = "/"
    if not action.get("scheme"):
        action["scheme"] = "HTTP"


_VOLUME_SOURCES: Final = frozenset({
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
})


def default_volume(v: JsonDict) -> None:
    """``SetDefaultPodVolumes`` for one volume: emptyDir when no source, modes, fieldRefs, token expiry."""
    if not any(v.get(k) is not None for k in _VOLUME_SOURCES):
        v["emptyDir"] = {}
    if isinstance(v.get("hostPath"), dict) and v["hostPath"].get("type") is None:
        v["hostPath"]["type"] = ""
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        src = v.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = DEFAULT_VOLUME_MODE
    if isinstance(v.get("downwardAPI"), dict):
        for item in _dicts(v["downwardAPI"].get("items")):
            if isinstance(item.get("fieldRef"), dict):
                _default_field_ref(item["fieldRef"])
    if isinstance(v.get("projected"), dict):
        for source in _dicts(v["projected"].get("sources")):
            if isinstance(source.get("downwardAPI"), dict):
                for item in _dicts(source["downwardAPI"].get("items")):
                    if isinstance(item.get("fieldRef"), dict):
                        _default_field_ref(item["fieldRef"])
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = DEFAULT_TOKEN_EXPIRATION_SECONDS


__all__ = ["DEFAULT_TERMINATION_MESSAGE_PATH", "DEFAULT_TOKEN_EXPIRATION_SECONDS", "DEFAULT_VOLUME_MODE",
           "default_container", "default_volume", "image_tag"]
