"""Injectable API faults: per-verb latency and error rates, watch streams cut after N events or seconds.

All off by default. Configure at start (`SimCluster(faults=Faults(...))`, `python -m sim --fault-...`) or at
run time (`cluster.faults.update(...)`, `POST /sim/faults` with the same JSON, `DELETE /sim/faults`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from sim.errors import ApiError

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass
class Faults:
    # verb (or "*") -> seconds added before the request is handled
    latency: dict[str, float] = field(default_factory=dict)
    # verb (or "*") -> probability in [0, 1] that the request fails instead of being handled
    error_rate: dict[str, float] = field(default_factory=dict)
    # status codes a failing request answers with (picked at random): 403, 409, 429, 500, 503
    error_codes: list[int] = field(default_factory=lambda: [500])
    # Retry-After seconds sent with 429 (and in Status details.retryAfterSeconds)
    retry_after: int = 1
    # close every watch stream after this many events (None: never)
    watch_cut_after: int | None = None
    # ... or after this many seconds, whether or not events flowed (None: never)
    watch_cut_after_seconds: float | None = None
    # only resources whose plural is listed are affected (empty: all)
    resources: list[str] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # ---------------------------------------------------------------- runtime API

    def update(self, **changes: Any) -> Faults:
        for k, v in changes.items():
            if k not in self.to_dict():
                raise ValueError(f"unknown fault setting {k!r}")
            setattr(self, k, v)
        if "seed" in changes:
            self._rng = random.Random(self.seed)
        return self

    def reset(self) -> Faults:
        fresh = Faults()
        for k, v in fresh.to_dict().items():
            setattr(self, k, v)
        self._rng = random.Random()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return bool(
            self.latency
            or self.error_rate
            or self.watch_cut_after is not None
            or self.watch_cut_after_seconds is not None
        )

    # ---------------------------------------------------------------- used by the server

    def _applies(self, plural: str) -> bool:
        return not self.resources or plural in self.resources

    def latency_for(self, verb: str, plural: str) -> float:
        if not self.latency or not self._applies(plural):
            return 0.0
        return float(self.latency.get(verb, self.latency.get("*", 0.0)))

    def error_for(self, verb: str, plural: str, name: str) -> ApiError | None:
        if not self.error_rate or not self._applies(plural):
            return None
        rate = float(self.error_rate.get(verb, self.error_rate.get("*", 0.0)))
        if rate <= 0 or self._rng.random() >= rate:
            return None
        code = self._rng.choice(self.error_codes or [500])
        if code == 409:
            return ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again "
                "(injected fault)",
                {"name": name, "kind": plural},
            )
        if code == 403:  # what a quota or an admission webhook answers
            what = f'{plural} "{name}"' if name else plural
            return ApiError(
                403,
                "Forbidden",
                f"{what} is forbidden: exceeded quota: injected fault",
                {"name": name, "kind": plural},
            )
        if code == 429:
            return ApiError(
                429,
                "TooManyRequests",
                "Too many requests: injected fault, please try again later",
                {"retryAfterSeconds": self.retry_after},
                {"Retry-After": str(self.retry_after)},
            )
        if code == 503:
            return ApiError(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
                {"retryAfterSeconds": self.retry_after},
                {"Retry-After": str(self.retry_after)},
            )
        return ApiError(
            code,
            "InternalError",
            "Internal error occurred: injected fault",
            {"causes": [{"message": "injected fault"}]},
        )
