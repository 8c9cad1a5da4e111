"""Leases in a NATS KV bucket: the watcher's single active instance and the planner's partition claims.

A lease is one key of the install's lease bucket (`KB_LEASES`) holding a `LeaseRecord`. Every write is
a compare-and-set on the key's last revision (`Nats-Expected-Last-Subject-Sequence`: 0 to create), and
carries a per-message TTL (`Nats-TTL`), so the *server* drops a lease its holder stopped renewing: no
reader ever compares its clock with the writer's.

Fencing: a holder counts its lease as held only until half the TTL after it *sent* its last successful
renewal (`Lease.held` reads the local monotonic clock, so it turns false even while a renewal hangs);
it renews every quarter TTL and steps down at that deadline. The server keeps the key for the full TTL
after it *stored* that renewal, which is later than it was sent, so a holder that lost its lease has
stopped acting for at least half a TTL before any other instance can create the key again. A holder
that shuts down deletes its key (again compare-and-set), and a standby takes over at once.

`ActiveStandby` runs a body only while holding one lease (the watcher); `PartitionClaims` holds a fair
share of N partition leases among the live replicas (the planner), releasing a partition only after
its owner's callback has fenced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.js import api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from schemas.lease import LEASE_DECODER, LeaseRecord
from schemas.subjects import LEASE_MEMBER, LEASE_PARTITION, lease_bucket
from schemas.timefmt import format_micro
from services.bus import STREAM_CHECK_INTERVAL, TRANSIENT_NATS_ERRORS, Bus

log = logging.getLogger("kruisebus.lease")

KV_OPERATION = "KV-Operation"
KV_DELETE = "DEL"
EXPECTED_LAST = str(api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value)
MSG_TTL = str(api.Header.MSG_TTL.value)
WRONG_LAST_SEQUENCE = (10071, 10164)  # JSStreamWrongLastSequenceErrF, ...ConstantErr

_ENCODER = msgspec.json.Encoder()
# what a lease operation may fail with and still be worth retrying (NATS down, a leader election)
RETRYABLE: tuple[type[BaseException], ...] = (*TRANSIENT_NATS_ERRORS, APIError, nats.errors.Error)
RETRYABLE_OR_TIMEOUT: tuple[type[BaseException], ...] = (TimeoutError, *RETRYABLE)


class LeaseBucketMissing(RuntimeError):
    """The install's lease bucket has not been created (`kruisebus nats-init`)."""


class LeaseConflict(Exception):
    """The key's last revision was not the one this write expected: someone else holds the lease."""


def default_holder(service: str) -> str:
    """`<service>-<host>-<pid>`: unique among live instances (set `KRUISEBUS_HOLDER` to the Pod name
    in a cluster, so a restarted container takes its own leases back at once)."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}"


class LeaseStore:
    """The lease bucket: read, compare-and-set write (with TTL), delete, list by key prefix."""

    def __init__(self, bus: Bus, bucket: str) -> None:
        self.bus = bus
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."

    @staticmethod
    def bucket_of(bus: Bus) -> str:
        return lease_bucket(bus.prefix)

    @classmethod
    async def open(cls, bus: Bus, *, create: bool = True) -> LeaseStore:
        """The install's bucket; `create` makes it when missing (needs the admin's stream permissions,
        else it must exist: `kruisebus nats-init`)."""
        store = cls(bus, lease_bucket(bus.prefix))
        if create:
            await store.ensure()
        else:
            try:
                await bus.js.stream_info(store.stream)
            except NotFoundError:
                raise LeaseBucketMissing(
                    f"lease bucket {store.bucket} (stream {store.stream}) does not exist: "
                    "run `kruisebus nats-init` as the admin NATS user"
                ) from None
        return store

    async def ensure(self) -> None:
        try:
            await self.bus.js.create_key_value(
                bucket=self.bucket,
                history=1,
                replicas=self.bus.replicas,
                storage=api.StorageType.FILE,
                direct=True,
                description="kruisebus: leases (watcher, planner partitions)",
            )
        except BadRequestError as err:
            if err.err_code != 10058:  # exists with another configuration (replicas changed): keep it
                raise

    def subject(self, key: str) -> str:
        return self.prefix + key

    async def guard(self, stop: asyncio.Event, ttl: int, interval: float = STREAM_CHECK_INTERVAL) -> None:
        """Recreate the bucket, with the config it had, when it is lost (deleted, or replaced), until `stop`.
        Its writers own it (the watcher and the planners), and each recreates it only `ttl` (the lease
        TTL) after it saw it gone: every lease stored in the lost bucket was last renewed before the
        loss, so by then no holder counts one as held any more (`Lease.held`, half a TTL), exactly as if
        every key had expired; a new claim cannot overlap an old one. The holders' next renewal finds
        their key gone (a conflict: lost at once) and they claim again."""
        await self.bus.guard_stream(self.bucket, stop=stop, recreate=True, interval=interval, stream=self.stream,
                                    recreate_after=float(ttl))

    async def read(self, key: str) -> tuple[LeaseRecord | None, int]:
        """(record, revision); (None, revision of its delete marker or 0) when nobody holds it."""
        try:
            msg = await self.bus.js.get_msg(self.stream, subject=self.subject(key), direct=True)
        except NotFoundError:
            return None, 0
        assert msg.seq is not None
        if (msg.headers or {}).get(KV_OPERATION):
            return None, msg.seq
        try:
            return LEASE_DECODER.decode(msg.data or b""), msg.seq
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("lease %s holds an unreadable record; treating it as held by someone else", key)
            return LeaseRecord(holder="?", ttl=0, acquired=""), msg.seq

    async def write(self, key: str, record: LeaseRecord, *, last: int, ttl: int) -> int:
        """Write `record` if the key's last revision is `last` (0: no message); returns the new revision."""
        headers = {EXPECTED_LAST: str(last), MSG_TTL: f"{ttl}s"}
        try:
            ack = await self.bus.js.publish(self.subject(key), _ENCODER.encode(record), headers=headers)
        except APIError as err:
            if err.err_code in WRONG_LAST_SEQUENCE:
                raise LeaseConflict(key) from None
            raise
        return ack.seq

    async def delete(self, key: str, *, last: int) -> None:
        headers = {KV_OPERATION: KV_DELETE, EXPECTED_LAST: str(last)}
        try:
            await self.bus.js.publish(self.subject(key), b"", headers=headers)
        except APIError as err:
            if err.err_code in WRONG_LAST_SEQUENCE:
                raise LeaseConflict(key) from None
            raise

    async def live(self, key_prefix: str) -> dict[str, LeaseRecord]:
        """Every held lease whose key starts with `key_prefix.` (direct gets, no consumer)."""
        out: dict[str, LeaseRecord] = {}
        seq = 1
        filt = self.subject(f"{key_prefix}.>")
        while True:
            try:
                msg = await self.bus.js.get_msg(self.stream, seq=seq, subject=filt, next=True, direct=True)
            except NotFoundError:
                return out
            assert msg.seq is not None and msg.subject is not None
            seq = msg.seq + 1
            key = msg.subject[len(self.prefix) :]
            if (msg.headers or {}).get(KV_OPERATION):
                out.pop(key, None)
                continue
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                out[key] = LEASE_DECODER.decode(msg.data or b"")


class Lease:
    """One lease key, from one holder's side."""

    def __init__(
        self, store: LeaseStore, key: str, holder: str, ttl: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl < 1 or int(ttl) != ttl:
            raise ValueError(f"lease ttl must be a whole number of seconds >= 1, got {ttl!r}")
        self.store = store
        self.key = key
        self.holder = holder
        self.ttl = int(ttl)
        self.clock = clock
        self.revision = 0
        self.deadline = 0.0  # held until then (half a TTL after the last successful write was sent)
        self.acquired = ""
        self.renewals = 0

    @property
    def held(self) -> bool:
        return self.revision != 0 and self.clock() < self.deadline

    @property
    def renew_interval(self) -> float:
        return self.ttl / 4

    def _record(self) -> LeaseRecord:
        return LeaseRecord(holder=self.holder, ttl=self.ttl, acquired=self.acquired, renewals=self.renewals)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or this holder does, from before a restart)."""
        if self.held:
            return True
        record, revision = await self.store.read(self.key)
        if record is not None and record.holder != self.holder:
            return False
        self.acquired = format_micro(datetime.now(UTC))
        self.renewals = 0
        sent = self.clock()
        try:
            self.revision = await self.store.write(self.key, self._record(), last=revision, ttl=self.ttl)
        except LeaseConflict:
            return False
        self.deadline = sent + self.ttl / 2
        log.debug("lease %s acquired by %s (ttl %ds)", self.key, self.holder, self.ttl)
        return True

    async def renew(self) -> bool:
        """Extend the lease; True while it is held. A conflict (someone else's key, or ours expired)
        loses it at once; a NATS error keeps it only until its deadline."""
        if not self.revision:
            return False
        if not self.held:
            # past its deadline the holder has stopped acting on it: lost, not renewed. A renewal now
            # could even land in a recreated bucket where another holder's key has this revision
            log.warning("lease %s lapsed for %s (not renewed in time)", self.key, self.holder)
            self.revision, self.deadline = 0, 0.0
            return False
        sent = self.clock()
        self.renewals += 1
        try:
            revision = await asyncio.wait_for(
                self.store.write(self.key, self._record(), last=self.revision, ttl=self.ttl),
                timeout=max(0.05, self.deadline - sent),
            )
        except LeaseConflict:
            log.warning("lease %s lost by %s (taken over or expired)", self.key, self.holder)
            self.revision, self.deadline = 0, 0.0
            return False
        except RETRYABLE_OR_TIMEOUT as err:
            log.warning(
                "lease %s: renewal failed (%s); held for %.1fs more",
                self.key,
                type(err).__name__,
                max(0.0, self.deadline - self.clock()),
            )
            return self.held
        self.revision, self.deadline = revision, sent + self.ttl / 2
        return True

    async def release(self) -> None:
        """Give the lease up (the caller has stopped acting on it); a standby may take it at once."""
        revision, self.revision, self.deadline = self.revision, 0, 0.0
        if not revision:
            return
        try:
            await self.store.delete(self.key, last=revision)
            log.debug("lease %s released by %s", self.key, self.holder)
        except Exception as err:  # it expires by itself
            log.warning("lease %s: release failed (%s); it expires in %ds", self.key, err, self.ttl)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


class ActiveStandby:
    """Run `body` only while holding `lease`: standby until it is free, active until it is lost (the
    body is cancelled at once) or `stop` is set (the body, which sees `stop` too, gets `grace` seconds
    to finish what it has in flight); then the lease is released."""

    def __init__(self, lease: Lease, *, poll: float | None = None, grace: float = 0.0) -> None:
        self.lease = lease
        self.grace = grace
        self.poll = poll if poll is not None else max(0.1, lease.ttl / 10)
        self.active = asyncio.Event()
        self.terms = 0  # how many times this instance became active

    async def run(self, body: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        guard = asyncio.ensure_future(self.lease.store.guard(stop, self.lease.ttl))
        try:
            await self._run(body, stop)
        finally:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard

    async def _run(self, body: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        lease = self.lease
        while not stop.is_set():
            try:
                got = await lease.acquire()
            except RETRYABLE as err:
                log.info("lease %s: %s; retrying", lease.key, type(err).__name__)
                got = False
            if not got:
                await _wait(stop, self.poll)
                continue
            self.terms += 1
            log.info("%s is active (lease %s)", lease.holder, lease.key)
            task = asyncio.ensure_future(body())
            self.active.set()
            try:
                await self._hold(task, stop)
            finally:
                self.active.clear()
                if stop.is_set() and not task.done() and self.grace > 0:
                    await asyncio.wait({task}, timeout=self.grace)
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if stop.is_set() or lease.held:
                    await lease.release()
            if task.done() and not task.cancelled() and task.exception() is None and not stop.is_set():
                log.warning("%s: the active body ended by itself; standing by", lease.holder)

    @staticmethod
    async def _stopped(stop: asyncio.Event) -> None:
        await stop.wait()

    async def _hold(self, task: asyncio.Future[None], stop: asyncio.Event) -> None:
        lease = self.lease
        stopper: asyncio.Future[None] = asyncio.ensure_future(self._stopped(stop))
        try:
            while True:
                # renew every quarter TTL, and check again exactly at the deadline of a renewal that failed
                until_renew = min(lease.renew_interval, max(0.0, lease.deadline - lease.clock()))
                await asyncio.wait({task, stopper}, timeout=until_renew, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    task.result()  # a failed body fails the service
                    return
                if stop.is_set():
                    return
                if not await lease.renew():
                    log.warning("%s lost lease %s: stepping down", lease.holder, lease.key)
                    return
        finally:
            stopper.cancel()


def partition_order(holder: str, partitions: int) -> list[int]:
    """The order in which `holder` tries free partitions: a rotation that differs per holder, so
    replicas starting together do not all race for partition 0."""
    start = zlib.crc32(holder.encode()) % partitions
    return [(start + i) % partitions for i in range(partitions)]


Callback = Callable[[int], Awaitable[None]]


class PartitionClaims:
    """Hold a fair share (`ceil(partitions / live replicas)`) of the partition leases.

    Each replica also holds a member lease (`planner.member.<holder>`), which is how the others count
    it. Every quarter TTL, in one task, every lease held is renewed; in another, the live replicas are
    counted, partitions above the fair share released and free ones below it claimed (which may take
    long: `on_gained` scans what is queued, and renewals must not wait for it). `on_gained(p)` runs before `holds(p)` turns true (the owner recovers what
    is in flight); `on_released(p)` runs before a partition is given up voluntarily (the owner stops
    acting on it, so the next owner never overlaps it); a partition lost by a failed renewal is
    reported to `on_released` too, after `holds(p)` already turned false by the clock.
    """

    def __init__(
        self,
        store: LeaseStore,
        holder: str,
        partitions: int,
        ttl: int,
        *,
        on_gained: Callback,
        on_released: Callback,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = STREAM_CHECK_INTERVAL,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.store = store
        self.holder = holder
        self.partitions = partitions
        self.ttl = ttl
        self.clock = clock
        self.on_gained = on_gained
        self.on_released = on_released
        self.check_interval = check_interval  # how often the bucket is looked at (LeaseStore.guard)
        self.member = Lease(store, f"{LEASE_MEMBER}.{_key_token(holder)}", holder, ttl, clock)
        self.leases: dict[int, Lease] = {}
        self.ready: set[int] = set()  # held and recovered (on_gained done)
        self.members = 1
        self.changed = asyncio.Event()  # set after every step that gained or released a partition
        self._renewing = asyncio.Lock()  # one compare-and-set write of a key at a time

    def holds(self, partition: int) -> bool:
        lease = self.leases.get(partition)
        return partition in self.ready and lease is not None and lease.held

    def held(self) -> list[int]:
        return sorted(p for p in self.leases if self.holds(p))

    def target(self) -> int:
        return math.ceil(self.partitions / max(1, self.members))

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and hand over partitions every quarter TTL until `stop`; renewals run in their own
        task (`keep_renewed`), so a long `on_gained` (a scan of the queued commands) or a slow step
        never lets the leases already held lapse."""
        renewer = asyncio.ensure_future(self.keep_renewed(stop))
        guard = asyncio.ensure_future(self.store.guard(stop, self.ttl, self.check_interval))
        try:
            while not stop.is_set():
                if renewer.done():
                    renewer.result()  # renewals failed for good: so does this (the service stops)
                try:
                    await self.step()
                except RETRYABLE as err:
                    log.info("partition claims: %s; retrying", type(err).__name__)
                await _wait(stop, self.ttl / 4)
        finally:
            for task in (renewer, guard):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.release_all()

    async def keep_renewed(self, stop: asyncio.Event) -> None:
        """Renew the member lease and every partition lease each quarter TTL, whatever `step` is doing."""
        while not stop.is_set():
            await _wait(stop, self.member.renew_interval)
            if stop.is_set():
                return
            try:
                await self.renew()
            except RETRYABLE as err:
                log.info("partition claims: renewal: %s; retrying", type(err).__name__)

    async def renew(self) -> None:
        """One round of renewals (the only place leases already held are renewed: two concurrent
        compare-and-set writes of one key would make one of them look like a lost lease). A partition
        whose renewal failed is dropped."""
        async with self._renewing:
            if self.member.revision:
                await self.member.renew()
            if not self.member.held:
                await self.member.acquire()
            leases = list(self.leases.items())
            renewed = await asyncio.gather(*(lease.renew() for _, lease in leases))
        for (p, lease), ok in zip(leases, renewed, strict=True):
            if not ok and self.leases.get(p) is lease:
                log.warning("%s lost partition %d", self.holder, p)
                await self._drop(p)
                self.changed.set()

    async def step(self) -> None:
        changed = False
        if not self.member.held:
            async with self._renewing:
                await self.member.acquire()
        self.members = max(1, len(await self.store.live(LEASE_MEMBER)))
        target = self.target()
        for p in sorted(self.leases, reverse=True)[: max(0, len(self.leases) - target)]:
            log.info(
                "%s hands partition %d over (%d replicas, %d each)", self.holder, p, self.members, target
            )
            await self._drop(p)
            changed = True
        if len(self.leases) < target:
            for p in partition_order(self.holder, self.partitions):
                if len(self.leases) >= target:
                    break
                if p in self.leases:
                    continue
                lease = Lease(self.store, f"{LEASE_PARTITION}.{p}", self.holder, self.ttl, self.clock)
                if await lease.acquire():
                    self.leases[p] = lease  # renewed from now on, also while on_gained runs
                    await self.on_gained(p)
                    if self.leases.get(p) is lease and lease.held:
                        self.ready.add(p)
                    changed = True
        if changed:
            log.info("%s holds partitions %s of %d", self.holder, self.held(), self.partitions)
            self.changed.set()

    async def _drop(self, p: int) -> None:
        lease = self.leases.pop(p, None)
        if lease is None:
            return
        self.ready.discard(p)
        try:
            await self.on_released(p)
        finally:
            async with self._renewing:  # not while a renewal of it is in flight
                await lease.release()

    async def release_all(self) -> None:
        for p in list(self.leases):
            with contextlib.suppress(Exception):
                await self._drop(p)
        await self.member.release()


def _key_token(holder: str) -> str:
    """A holder id as one KV key token (letters, digits, `-`, `_`)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in holder)


__all__ = [
    "ActiveStandby",
    "Lease",
    "LeaseBucketMissing",
    "LeaseConflict",
    "LeaseStore",
    "PartitionClaims",
    "default_holder",
    "partition_order",
]
