"""Leases in the NATS KV bucket against a real nats-server: compare-and-set, TTL expiry, take-over,
fencing (a holder stops acting before another starts), release, and partition claims."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats.errors
import pytest
from nats.js.errors import NotFoundError

from schemas.lease import LeaseRecord
from services.bus import Bus
from services.lease import ActiveStandby, Lease, LeaseStore, PartitionClaims
from services.natsd import NatsServer
from services.observe import poll

TTL = 2


@pytest.fixture
async def store(nats_server: NatsServer, uid: str) -> AsyncIterator[LeaseStore]:
    bus = await Bus.connect(nats_server.url, name=f"test-lease-{uid}", prefix=f"t{uid}")
    try:
        yield await LeaseStore.open(bus)
    finally:
        await bus.close()


async def test_only_one_holder_at_a_time_and_the_other_takes_over_after_expiry(store: LeaseStore) -> None:
    a, b = Lease(store, "watcher", "a", TTL), Lease(store, "watcher", "b", TTL)
    assert await a.acquire()
    assert not await b.acquire()
    record, _ = await store.read("watcher")
    assert record is not None and record.holder == "a"
    # a stops renewing (as if SIGKILLed): b gets it once the server dropped the key, within one TTL
    started = time.monotonic()
    await poll(b.acquire, bool, timeout=TTL + 2, interval=0.05, what="b to take the lease over")
    waited = time.monotonic() - started
    assert TTL - 0.2 <= waited <= TTL + 0.5, waited
    # a's renewal now conflicts: it has lost the lease and says so at once
    assert not await a.renew()
    assert not a.held


async def test_a_renewed_lease_stays_with_its_holder(store: LeaseStore) -> None:
    a, b = Lease(store, "k", "a", TTL), Lease(store, "k", "b", TTL)
    assert await a.acquire()
    end = time.monotonic() + 2.5 * TTL
    while time.monotonic() < end:
        assert await a.renew()
        assert not await b.acquire()
        await asyncio.sleep(a.renew_interval)
    assert a.held


async def test_a_holder_counts_itself_out_before_the_key_expires(store: LeaseStore) -> None:
    """Fencing: without renewals `held` turns false after half a TTL, the key lives a full TTL."""
    a, b = Lease(store, "k", "a", TTL), Lease(store, "k", "b", TTL)
    assert await a.acquire()
    await poll(lambda: _false(a.held), bool, timeout=TTL, interval=0.02, what="a to count itself out")
    stepped_down = time.monotonic()
    await poll(b.acquire, bool, timeout=TTL + 2, interval=0.02, what="b to take over")
    assert time.monotonic() - stepped_down >= TTL / 2 - 0.2


async def _false(value: bool) -> bool:
    return not value


async def test_release_lets_a_standby_take_over_at_once(store: LeaseStore) -> None:
    a, b = Lease(store, "k", "a", 30), Lease(store, "k", "b", 30)
    assert await a.acquire()
    await a.release()
    assert await b.acquire()
    assert not await a.acquire()


async def test_a_restarted_holder_takes_its_own_lease_back(store: LeaseStore) -> None:
    assert await Lease(store, "k", "pod-0", 30).acquire()
    assert await Lease(store, "k", "pod-0", 30).acquire()  # same identity, new process
    assert not await Lease(store, "k", "pod-1", 30).acquire()


def test_ttl_must_be_whole_seconds(store: LeaseStore) -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        Lease(store, "k", "a", 1.5)  # type: ignore[arg-type]


async def test_active_standby_switches_when_the_active_one_stops(store: LeaseStore) -> None:
    running: list[str] = []

    def body(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            running.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(name)

        return run

    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = ActiveStandby(Lease(store, "watcher", "a", TTL))
    b = ActiveStandby(Lease(store, "watcher", "b", TTL))
    ta = asyncio.create_task(a.run(body("a"), stop_a))
    await asyncio.wait_for(a.active.wait(), 5)
    tb = asyncio.create_task(b.run(body("b"), stop_b))
    await asyncio.sleep(TTL)  # b must stay a standby while a renews  # noqa: ASYNC110
    assert running == ["a"]
    stop_a.set()
    await ta
    await asyncio.wait_for(b.active.wait(), 2)  # released on stop: no TTL to wait out
    assert running == ["b"]
    stop_b.set()
    await tb
    assert running == []


async def test_partitions_are_shared_fairly_and_never_held_twice(store: LeaseStore) -> None:
    events: list[tuple[str, str, int]] = []
    owners: dict[int, str] = {}

    def claims(holder: str) -> PartitionClaims:
        async def gained(p: int) -> None:
            assert p not in owners, f"{holder} gained {p} still held by {owners.get(p)}"
            owners[p] = holder
            events.append(("gain", holder, p))

        async def released(p: int) -> None:
            assert owners.pop(p) == holder
            events.append(("release", holder, p))

        return PartitionClaims(store, holder, 8, TTL, on_gained=gained, on_released=released)

    stops = {h: asyncio.Event() for h in "abc"}
    cs = {h: claims(h) for h in "abc"}
    tasks = {"a": asyncio.create_task(cs["a"].run(stops["a"]))}
    await poll(lambda: _held(cs["a"]), lambda n: n == 8, timeout=5, interval=0.05, what="a to hold all 8")
    for h in "bc":
        tasks[h] = asyncio.create_task(cs[h].run(stops[h]))

    async def split() -> list[int]:
        return sorted(len(c.held()) for c in cs.values())

    await poll(split, lambda s: s == [2, 3, 3], timeout=15, interval=0.1, what="8 partitions split 3/3/2")
    stops["b"].set()
    stops["c"].set()
    await asyncio.gather(tasks["b"], tasks["c"])
    await poll(
        lambda: _held(cs["a"]), lambda n: n == 8, timeout=10, interval=0.1, what="a to hold all 8 again"
    )
    stops["a"].set()
    await tasks["a"]
    assert owners == {}


async def _held(c: PartitionClaims) -> int:
    return len(c.held())


async def test_a_missing_bucket_is_reported_with_what_to_run(nats_server: NatsServer, uid: str) -> None:
    from services.lease import LeaseBucketMissing

    bus = await Bus.connect(nats_server.url, name=f"test-lease-{uid}", prefix=f"m{uid}")
    try:
        with pytest.raises(LeaseBucketMissing, match="kruisebus nats-init"):
            await LeaseStore.open(bus, create=False)
    finally:
        await bus.close()


class _Partitioned(LeaseStore):
    """A store whose writes stop reaching the server once `cut` is set (a network partition)."""

    cut = False

    async def write(self, key: str, record: LeaseRecord, *, last: int, ttl: int) -> int:
        if self.cut:
            raise nats.errors.TimeoutError
        return await super().write(key, record, last=last, ttl=ttl)


async def test_an_active_instance_cut_off_stops_before_the_standby_starts(store: LeaseStore) -> None:
    """The active instance's renewals stop reaching the server: it stops its body by its own clock
    (half a TTL after its last renewal); the key expires a full TTL after it, and only then does the
    standby start its body."""
    timeline: list[tuple[str, float]] = []

    def body(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            timeline.append((f"{name} start", time.monotonic()))
            try:
                await asyncio.Event().wait()
            finally:
                timeline.append((f"{name} stop", time.monotonic()))

        return run

    stops = [asyncio.Event(), asyncio.Event()]
    cut_off = _Partitioned(store.bus, store.bucket)
    a = ActiveStandby(Lease(cut_off, "watcher", "a", TTL))
    ta = asyncio.create_task(a.run(body("a"), stops[0]))
    await asyncio.wait_for(a.active.wait(), 5)
    b = ActiveStandby(Lease(store, "watcher", "b", TTL))
    tb = asyncio.create_task(b.run(body("b"), stops[1]))
    cut_off.cut = True
    await asyncio.wait_for(b.active.wait(), TTL + 2)
    assert [what for what, _ in timeline] == ["a start", "a stop", "b start"]
    assert timeline[2][1] - timeline[1][1] >= TTL / 4, "the standby started right after the old one stopped"
    for s in stops:
        s.set()
    await asyncio.gather(ta, tb)


async def test_leases_held_are_renewed_while_a_new_partition_is_recovered(store: LeaseStore) -> None:
    """Taking a partition over scans its queued commands (`on_gained`), which can take longer than half
    a TTL on a long queue; the partitions and the member lease already held must stay held meanwhile
    (they lapsed when renewals waited for the scans), and the new one too once the scan is done."""
    seen: dict[str, bool] = {}
    claims: PartitionClaims

    async def gained(p: int) -> None:
        if claims.held():  # the second partition: a scan taking a whole TTL
            await asyncio.sleep(TTL)  # the scan's work, not a wait for a condition
            seen["held during the scan"] = all(claims.holds(q) for q in claims.ready)
            seen["member during the scan"] = claims.member.held
            seen["new lease during the scan"] = claims.leases[p].held

    claims = PartitionClaims(store, "slow", 2, TTL, on_gained=gained, on_released=lambda p: asyncio.sleep(0))
    stop = asyncio.Event()
    task = asyncio.create_task(claims.run(stop))
    try:
        await poll(lambda: _held(claims), lambda n: n == 2, timeout=10, interval=0.05, what="both partitions")
        assert seen == {"held during the scan": True, "member during the scan": True,
                        "new lease during the scan": True}
    finally:
        stop.set()
        await task


async def test_a_deleted_bucket_is_recreated_and_the_partitions_claimed_again_never_held_twice(
        store: LeaseStore) -> None:
    """The lease bucket deleted under two planners' claims (an operator's `nats kv rm`, a lost disk): it
    comes back with its config, every partition is claimed again, and at no moment do both count the
    same partition as theirs (the bucket is recreated only once no old lease can still be held)."""
    async def noop(p: int) -> None:
        return None

    # the bucket looked at every 0.1 s: seen gone long before the old leases lapse by the holders' clocks
    cs = {h: PartitionClaims(store, h, 4, TTL, on_gained=noop, on_released=noop, check_interval=0.1)
          for h in "ab"}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in cs.values()]
    overlaps: list[tuple[float, int]] = []

    async def total() -> list[int]:
        return sorted(len(c.held()) for c in cs.values())

    try:
        await poll(total, lambda s: s == [2, 2], timeout=15, interval=0.05, what="4 partitions split 2/2")
        old = await store.bus.js.stream_info(store.stream)
        await store.bus.js.delete_stream(store.stream)
        deleted = time.monotonic()
        lapsed = False
        while True:  # sample who holds what every 10 ms until both hold their share again
            held = [set(c.held()) for c in cs.values()]
            overlaps += [(time.monotonic() - deleted, p) for p in held[0] & held[1]]
            lapsed = lapsed or not (held[0] or held[1])
            if lapsed and sorted(map(len, held)) == [2, 2]:
                break
            assert time.monotonic() - deleted < 20, f"partitions not claimed again: {held}"
            await asyncio.sleep(0.01)
        assert overlaps == [], f"a partition held by both (seconds after the delete, partition): {overlaps[:5]}"
        new = await store.bus.js.stream_info(store.stream)
        assert new.created != old.created
        assert (new.config.subjects, new.config.max_msgs_per_subject, new.config.allow_direct,
                new.config.allow_msg_ttl) == (old.config.subjects, old.config.max_msgs_per_subject,
                                              old.config.allow_direct, old.config.allow_msg_ttl)
        print(f"claimed again {time.monotonic() - deleted:.1f}s after the delete")
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_deleted_bucket_comes_back_only_once_no_old_lease_counts_as_held(store: LeaseStore) -> None:
    """Fencing across a lost bucket: a lease taken just before the delete is still held by its holder's
    clock for half a TTL; the bucket (where anyone could take the key at once) must not exist before."""
    a, b = Lease(store, "watcher", "a", TTL), Lease(store, "watcher", "b", TTL)
    stop = asyncio.Event()
    guard = asyncio.create_task(store.guard(stop, TTL, interval=0.05))
    try:
        await poll(lambda: store.bus.js.stream_info(store.stream), lambda _: True, timeout=5, what="the bucket")
        await asyncio.sleep(0.2)  # the guard has read the bucket's config
        assert await a.acquire()
        await store.bus.js.delete_stream(store.stream)

        async def back() -> bool:
            try:
                await store.bus.js.stream_info(store.stream)
            except NotFoundError:
                return False
            return True

        await poll(back, bool, timeout=TTL + 5, interval=0.01, what="the bucket recreated")
        assert not a.held, "the bucket was recreated while a still counts its lease as held"
        assert await b.acquire()
        assert not await a.renew()  # a's next renewal finds its key gone: lost at once
    finally:
        stop.set()
        await guard
