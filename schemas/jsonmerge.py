"""RFC 7386 JSON merge patch, written once.

Both sides of the API apply it: the sim's API server for `application/merge-patch+json` requests, and
the SidecarSet's `MergePatchJson` patchPodMetadata policy, which merges a JSON annotation value into the
one a pod already carries (Kruise's `jsonpatch.MergePatch`). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else (lists too) replaces.

    The result shares structure with `target` and `patch`: copy it before mutating (the sim's store does).
    """
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge_patch(out.get(k), v)
        else:
            out[k] = v
    return out


__all__ = ["merge_patch"]
