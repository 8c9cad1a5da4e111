"""Deterministic CloneSet instance ids.

Kruise draws pod instance ids at random (5 characters of ``bcdfghjklmnpqrstvwxz2456789``). kruisebus
derives them instead: candidate ``k`` is the first 5 characters of Kubernetes' ``SafeEncodeString``
applied to the decimal of ``sha256(f"{cs_uid}/{k}")`` read as an integer, for k = 0, 1, 2, ...; a
candidate already used by any known pod (active or not) or reserved by a PVC is skipped. So a planner
that restarts before observing its own creates plans the *same* pod names, and a duplicate create
meets ``AlreadyExists`` on the API server instead of over-creating. The ids look exactly like Kruise's.

PVC reuse (the scale step): ids of PVCs whose instance id no pod uses are handed out first
(``pvcs.reusable_ids``), so a pod that replaces an evicted one mounts its volume again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

from schemas.constants import INSTANCE_ID_LENGTH, SAFE_ALPHABET


def safe_encode(text: str) -> str:
    """Kubernetes ``rand.SafeEncodeString``: map each byte into the 27-character safe alphabet."""
    alphabet = SAFE_ALPHABET
    n = len(alphabet)
    return "".join(alphabet[b % n] for b in text.encode())


def candidate_id(cs_uid: str, k: int) -> str:
    digest = int.from_bytes(hashlib.sha256(f"{cs_uid}/{k}".encode()).digest()[:16], "big")
    return safe_encode(str(digest))[:INSTANCE_ID_LENGTH]


def generate_ids(
    cs_uid: str,
    count: int,
    used: Collection[str],
    reusable_pvc_ids: Iterable[str] = (),
    reserved_pvc_ids: Collection[str] = (),
) -> list[str]:
    """``count`` ids not in ``used``: reusable PVC ids first (sorted, for determinism), then derived ids.

    ``reserved_pvc_ids`` are ids held by PVCs (not reusable right now); derived ids never collide with them.
    """
    out: list[str] = []
    taken = set(used)
    for pid in sorted(set(reusable_pvc_ids)):
        if len(out) >= count:
            return out
        if pid not in taken:
            out.append(pid)
            taken.add(pid)
    k = 0
    while len(out) < count:
        cid = candidate_id(cs_uid, k)
        k += 1
        if cid in taken or cid in reserved_pvc_ids:
            continue
        out.append(cid)
        taken.add(cid)
    return out
