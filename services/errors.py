"""The exceptions kruisebus raises on purpose, shaped like httpx's tree.

A message handler signals how its message must be settled by what it raises, so the settle rules of
DESIGN §3 are one `except` ladder in `services.bus`: a `TransientError` is retried later
(`nak(delay)`), a `PermanentError` is dropped (`term()`) with a `rejected` rollout event saying why.
Adapters (Kubernetes API, runtime) map their own library errors onto these at their boundary.
"""

from __future__ import annotations

__all__ = [
    "KruisebusError",
    "MalformedMessageError",
    "PermanentError",
    "StaleError",
    "TransientError",
]


class KruisebusError(Exception):
    """Base class of every error kruisebus raises on purpose."""


class TransientError(KruisebusError):
    """The operation may succeed later: the message is redelivered after `delay` seconds."""

    def __init__(self, message: str = "transient failure", *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(KruisebusError):
    """The message can never succeed: it is terminated and reported as a `rejected` event."""

    reason = "permanent"

    def __init__(self, message: str = "permanent failure", *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class StaleError(PermanentError):
    """A command's precondition failed: the plan was stale, the planner re-plans from fresh state."""

    reason = "stale"


class MalformedMessageError(PermanentError):
    """A message could not be decoded into its schema type."""

    reason = "malformed"
