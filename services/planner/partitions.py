"""Which planner partition a workload belongs to (pure: the same answer in every replica).

N planner replicas split the workloads by a fixed number of partitions, each claimed by one replica
through a lease (services/lease.py). A workload's partition is a hash of its uid, so it never moves
while the partition count stays the same (change the count only with every planner stopped).
"""

from __future__ import annotations

import zlib


def partition_of(uid: str, partitions: int) -> int:
    """The partition (0 .. partitions-1) of the workload with this uid."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return zlib.crc32(uid.encode()) % partitions


__all__ = ["partition_of"]
