"""Registry credentials from pull secrets: what an ImagePullJob's `pullSecrets` mean to a runtime.

An ImagePullJob names Secrets (`kubernetes.io/dockerconfigjson` or the older `dockercfg`); the `kube`
runtime hands them to its pull pod and lets the kubelet read them, the `cri` runtime must read them
itself and pass the matching entry as CRI's AuthConfig, as the kubelet's keyring does. Parsing and
matching are pure; `read_pull_secrets` is the one call that reads Secrets through `services.kube`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec

from schemas.messages import SECRETS
from services.runtime.base import PullAuth, RegistryCredentials, SecretRef
from services.runtime.images import parse_image, registry_host

if TYPE_CHECKING:
    from services.kube import Kube

DOCKER_CONFIG_JSON = ".dockerconfigjson"
DOCKER_CFG = ".dockercfg"


class _Entry(msgspec.Struct, kw_only=True):
    auth: str = ""
    username: str = ""
    password: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


class _DockerConfig(msgspec.Struct, kw_only=True):
    auths: dict[str, _Entry] = {}


class _Secret(msgspec.Struct, kw_only=True):
    type: str = ""
    data: dict[str, str] = {}


class PullSecretError(ValueError):
    """A pull secret that is not a docker config: its message names the secret and the key."""


def credentials_from_docker_config(
    raw: bytes, *, legacy: bool = False, source: str = ""
) -> list[RegistryCredentials]:
    """The entries of a `.dockerconfigjson` (`{"auths": {...}}`) or legacy `.dockercfg` (`{host: {...}}`);
    `auth` is decoded into username/password when those are not given."""
    where = f"{source}: " if source else ""
    try:
        auths = (
            msgspec.json.decode(raw, type=dict[str, _Entry])
            if legacy
            else msgspec.json.decode(raw, type=_DockerConfig).auths
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        key = DOCKER_CFG if legacy else DOCKER_CONFIG_JSON
        raise PullSecretError(f"{where}{key} is not a docker config: {e}") from None
    out = []
    for server, entry in sorted(auths.items()):
        username, password = entry.username, entry.password
        if entry.auth and not (username or password):
            try:
                username, _, password = base64.b64decode(entry.auth, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise PullSecretError(
                    f"{where}auths[{server!r}].auth is not base64 of user:password"
                ) from None
        out.append(
            RegistryCredentials(
                server_address=registry_host(server),
                username=username,
                password=password,
                auth=entry.auth,
                identity_token=entry.identitytoken,
                registry_token=entry.registrytoken,
            )
        )
    return out


def credentials_from_secret(raw: bytes, ref: SecretRef) -> list[RegistryCredentials]:
    """A Secret object's (JSON) docker config entries."""
    src = f"secret {ref.namespace}/{ref.name}"
    try:
        secret = msgspec.json.decode(raw, type=_Secret)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise PullSecretError(f"{src}: not a Secret: {e}") from None
    for key, legacy in ((DOCKER_CONFIG_JSON, False), (DOCKER_CFG, True)):
        if key in secret.data:
            try:
                data = base64.b64decode(secret.data[key])
            except binascii.Error:
                raise PullSecretError(f"{src}: data[{key!r}] is not base64") from None
            return credentials_from_docker_config(data, legacy=legacy, source=src)
    raise PullSecretError(
        f"{src} (type {secret.type or 'Opaque'}) has neither data[{DOCKER_CONFIG_JSON!r}] "
        f"nor data[{DOCKER_CFG!r}]"
    )


def match_credentials(image: str, credentials: Iterable[RegistryCredentials]) -> RegistryCredentials | None:
    """The first credentials for the image's registry (an entry without a server matches any)."""
    host = parse_image(image).domain
    for c in credentials:
        if not c.server_address or registry_host(c.server_address) == host:
            return c
    return None


async def read_pull_secrets(kube: Kube, refs: Sequence[SecretRef]) -> list[RegistryCredentials]:
    """Read the Secrets through the API server into credentials (in the order named)."""
    out: list[RegistryCredentials] = []
    for ref in refs:
        out.extend(credentials_from_secret(await kube.get(SECRETS, ref.namespace, ref.name), ref))
    return out


async def resolve(image: str, auth: PullAuth | None, kube: Kube | None) -> RegistryCredentials | None:
    """The credentials to pull `image` with: the given ones first, then the named secrets (read with
    `kube`; without a client, secrets cannot be read and that is an error naming them)."""
    if auth is None:
        return None
    found = match_credentials(image, auth.credentials)
    if found is not None or not auth.secrets:
        return found
    if kube is None:
        names = ", ".join(f"{s.namespace}/{s.name}" for s in auth.secrets)
        raise PullSecretError(f"pull secrets {names} cannot be read: this runtime has no Kubernetes client")
    return match_credentials(image, await read_pull_secrets(kube, auth.secrets))


__all__ = [
    "PullSecretError",
    "credentials_from_docker_config",
    "credentials_from_secret",
    "match_credentials",
    "read_pull_secrets",
    "resolve",
]
