"""Image references and pull failures, the same for every runtime (pure: no I/O).

A registry, containerd and the kubelet each word a failed pull their own way ("manifest unknown",
`rpc error: code = NotFound`, "401 Unauthorized", "pull access denied"); `pull_error` turns any of these
into the one `ImagePullError` subclass the node agent reports, so NodeImage status says "not found" or
"unauthorized" whichever runtime pulled. `parse_image` follows the reference grammar of
`github.com/distribution/reference` (the one the kubelet applies) so an invalid name fails as
`InvalidImageName` before any runtime is asked.
"""

from __future__ import annotations

import re

import msgspec

from services.errors import (
    ImageNotFound,
    ImagePullError,
    ImagePullTimeout,
    ImagePullUnauthorized,
    InvalidImageName,
)

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)


class ImageRef(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed image reference, normalised as the kubelet does (`nginx` -> `docker.io/library/nginx:latest`)."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """`domain/path`: the image without tag or digest (NodeImage's image key, CRI's repo)."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return (
            self.repository
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def parse_image(image: str) -> ImageRef:
    """Parse an image reference; raises `InvalidImageName` with the kubelet's wording."""
    m = _REFERENCE.match(image) if image and len(image) <= 255 else None
    if m is None:
        raise InvalidImageName(
            image,
            f'Failed to apply default image tag "{image}": couldn\'t parse image reference '
            f'"{image}": invalid reference format',
            kube_reason="InvalidImageName",
        )
    domain, path = m["domain"], m["path"]
    if (
        domain is not None
        and "." not in domain
        and ":" not in domain
        and domain != "localhost"
        and domain.lower() == domain
    ):
        # `a/b`: the first component is a path component, not a registry
        domain, path = None, f"{domain}/{path}"
    if domain is None or domain in DOCKER_HUB_ALIASES:
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    tag, digest = m["tag"] or "", m["digest"] or ""
    if not tag and not digest:
        tag = "latest"
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def registry_host(server: str) -> str:
    """The registry host of a docker config key (`https://index.docker.io/v1/` -> `docker.io`)."""
    host = re.sub(r"^[a-z]+://", "", server.strip()).split("/", 1)[0]
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


# --- failures ---------------------------------------------------------------------------------------

_UNAUTHORIZED = re.compile(
    r"unauthori[sz]ed|authorization failed|authentication required|401|403 forbidden|access denied"
    r"|code = Unauthenticated|code = PermissionDenied|incorrect username or password",
    re.I,
)
_NOT_FOUND = re.compile(
    r"not found|manifest unknown|name unknown|repository does not exist|does not exist|code = NotFound"
    r"|no such image|404",
    re.I,
)
_INVALID = re.compile(r"invalid reference format|InvalidImageName|couldn't parse image", re.I)
_TIMEOUT = re.compile(r"deadline exceeded|timed out|timeout|code = DeadlineExceeded", re.I)


def pull_error(image: str, message: str, *, kube_reason: str = "ErrImagePull") -> ImagePullError:
    """The `ImagePullError` for a runtime's or kubelet's failure message (checked most specific first:
    a registry that hides private repositories says "denied ... does not exist or may require
    authorization", which counts as unauthorized)."""
    msg = message.strip() or "image pull failed"
    if _INVALID.search(msg):
        return InvalidImageName(image, msg, kube_reason="InvalidImageName")
    if _UNAUTHORIZED.search(msg):
        return ImagePullUnauthorized(image, msg, kube_reason=kube_reason)
    if _NOT_FOUND.search(msg):
        return ImageNotFound(image, msg, kube_reason=kube_reason)
    if _TIMEOUT.search(msg):
        return ImagePullTimeout(image, msg, kube_reason=kube_reason)
    return ImagePullError(image, msg, kube_reason=kube_reason)


def pull_timeout(image: str, timeout: float) -> ImagePullTimeout:
    return ImagePullTimeout(image, f'pulling image "{image}" did not finish within {timeout:g}s')


__all__ = ["DOCKER_HUB", "ImageRef", "parse_image", "pull_error", "pull_timeout", "registry_host"]
