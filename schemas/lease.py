"""The value of a lease in the lease KV bucket: who holds it, for how long.

Readable by anyone looking at the bucket (`nats kv get KB_LEASES watcher`); the expiry itself is the
NATS message TTL, not a time in here, so no reader ever compares its clock with the writer's.
"""

from __future__ import annotations

import msgspec


class LeaseRecord(msgspec.Struct, kw_only=True, frozen=True):
    holder: str
    """The holder's identity: `<service>-<pod name or host>-<pid>`."""
    ttl: float
    """Seconds the lease lives after its last renewal (the message TTL of this record)."""
    acquired: str
    """RFC 3339 time the holder took the lease (informational)."""
    renewals: int = 0
    schema: int = 1


LEASE_DECODER = msgspec.json.Decoder(LeaseRecord)

__all__ = ["LEASE_DECODER", "LeaseRecord"]
