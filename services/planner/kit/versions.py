"""What the v1alpha1 <-> v1beta1 conversions of every kind share: the two apiVersions, and moving a key
between an object's labels or annotations and a spec field.

OpenKruise's v1beta1 turned several v1alpha1 labels and annotations into spec fields; each kind's
conversion module says which. Going to v1beta1 the key leaves the metadata map (and an emptied map
leaves the metadata, so a v1beta1 object reads back unchanged); coming back it is put in again. Pure:
the functions change only the copy they are given.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from schemas.constants import API_VERSION, API_VERSION_V1BETA1

V1ALPHA1: Final = API_VERSION
V1BETA1: Final = API_VERSION_V1BETA1


def converted(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A deep copy of ``obj`` at ``api_version`` (the conversions then edit the copy in place)."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = api_version
    return out


def take_meta(obj: dict[str, Any], map_name: str, key: str) -> str | None:
    """Remove ``metadata.<map_name>[key]`` and return its value (None when absent); an emptied map goes."""
    meta = obj.get("metadata")
    values = meta.get(map_name) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(values, dict) or key not in values:
        return None
    value = values.pop(key)
    if not values:
        del meta[map_name]
    return str(value)


def put_meta(obj: dict[str, Any], map_name: str, key: str, value: str) -> None:
    """Set ``metadata.<map_name>[key]``, creating the metadata and the map when missing."""
    meta = obj.setdefault("metadata", {})
    meta[map_name] = {**(meta.get(map_name) or {}), key: value}


__all__ = ["V1ALPHA1", "V1BETA1", "converted", "put_meta", "take_meta"]
