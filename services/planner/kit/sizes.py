"""How big an object is, and which of its fields makes it so: the spec-size limit's field error.

A denial for size must say where the bytes are, or the user has a 600 KB object and no idea which of its
strings to shorten. `too_large` walks down from the object into the child holding most of its bytes
while that child holds at least half of them, and names that path (`spec.template.metadata.annotations
.blob`) in the field-error style of every other denial.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.planner.kit.fielderrors import FieldError


def size(value: Any) -> int:
    """Bytes of `value` as JSON."""
    return len(msgspec.json.encode(value))


def _biggest_path(obj: Any, total: int) -> str:
    path = ""
    while isinstance(obj, dict | list) and obj:
        items = list(obj.items()) if isinstance(obj, dict) else list(enumerate(obj))
        key, child = max(((k, v) for k, v in items), key=lambda kv: size(kv[1]))
        if size(child) * 2 < total:
            break
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        obj = child
    return path or "<object>"


def too_large(obj: Any, limit: int) -> FieldError | None:
    """The field error of an object larger than `limit` bytes of JSON, None when it fits."""
    total = size(obj)
    if total <= limit:
        return None
    return FieldError(field=_biggest_path(obj, total), type="TooLong",
                      detail=f"may not be more than {limit} bytes (the object is {total} bytes)")


__all__ = ["size", "too_large"]
