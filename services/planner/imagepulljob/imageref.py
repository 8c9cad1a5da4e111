"""Image references as kruise-daemon reads them (`pkg/daemon/util` NormalizeImageRef, NormalizeImageRefToNameTag,
on top of the distribution `reference` grammar).

A NodeImage keys its spec by the *familiar* repository name (`nginx`, `quay.io/app`) and lists tags
under it (`1.21`, `latest`, or a digest `sha256:...`), so a job's image must be split exactly the
way Kruise splits it, or two jobs for one image would write two entries.
"""

from __future__ import annotations

import re
from typing import Final

_ALNUM: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT: Final = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6: Final = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN: Final = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG: Final = r"[\w][\w.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE: Final = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$"
)
_ANCHORED_ID: Final = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX: Final = 255
DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"


class ImageRefError(ValueError):
    """The reference does not parse; the text is distribution's error message."""


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        return DEFAULT_DOMAIN, name
    domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    return domain, remainder


def normalize(ref: str) -> tuple[str, str, str]:
    """(full repository name with domain, tag, digest) of `ref` (`ParseNormalizedNamed` + TagNameOnly):
    `nginx` -> ("docker.io/library/nginx", "latest", ""). Raises ImageRefError."""
    if _ANCHORED_ID.match(ref):
        raise ImageRefError(f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(ref)
    if domain == DEFAULT_DOMAIN and "/" not in remainder.split(":", 1)[0].split("@", 1)[0]:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    full = f"{domain}/{remainder}"
    m = _REFERENCE.match(full)
    if m is None:
        if _REFERENCE.match(f"{domain}/{remainder.lower()}") is not None:
            raise ImageRefError("invalid reference format: repository name must be lowercase")
        raise ImageRefError("invalid reference format")
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ImageRefError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if not tag and not digest:
        tag = "latest"
    return name, tag, digest


def familiar_name(full_name: str) -> str:
    """distribution's `FamiliarName`: `docker.io/library/nginx` -> `nginx`, `docker.io/me/app` -> `me/app`."""
    if full_name.startswith(DEFAULT_DOMAIN + "/"):
        path = full_name[len(DEFAULT_DOMAIN) + 1 :]
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            path = path[len(OFFICIAL_REPO_PREFIX) :]
        return path
    return full_name


def name_tag(ref: str) -> tuple[str, str]:
    """`NormalizeImageRefToNameTag`: (familiar name, tag or digest) — the NodeImage spec key and tag.
    A reference with both a tag and a digest pulls by the digest."""
    name, tag, digest = normalize(ref)
    return familiar_name(name), digest or tag


def validate(ref: str) -> str | None:
    """Why `ref` is not an image reference Kruise accepts, or None."""
    try:
        normalize(ref)
    except ImageRefError as exc:
        return str(exc)
    return None
