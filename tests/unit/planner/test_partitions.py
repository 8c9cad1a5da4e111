"""A workload's planner partition: the same in every replica, in range, and spread over the partitions."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from services.planner.partitions import partition_of


def test_the_hash_is_pinned() -> None:
    """Replicas of different kruisebus versions run side by side during an upgrade: a changed hash
    would move workloads between partitions while both versions plan them."""
    assert [partition_of(u, 16) for u in ("6f1c2a8e-0b7d-4c1e-9a43-2d5f7e8b9c10", "a", "b")] == [12, 3, 9]
    assert partition_of("6f1c2a8e-0b7d-4c1e-9a43-2d5f7e8b9c10", 1) == 0


def test_workloads_spread_over_every_partition() -> None:
    counts = Counter(partition_of(str(uuid.UUID(int=i * 7919 + 1)), 16) for i in range(1600))
    assert set(counts) == set(range(16))
    assert min(counts.values()) > 50, counts  # ~100 each


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        partition_of("uid", 0)
