"""High availability end to end: standbys take over from SIGKILLed leaders within one lease period,
and planner replicas come and go mid-rollout without a decision lost or made twice.

Every service is a process on the real nats-server with its own NATS user; the invariants are judged
by the independent checker (services/chaoscheck.py, which reads only the Kubernetes API) and by the
rollout log: every pod is updated exactly once per revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.msg import Msg

from schemas.messages import CLONESETS, COMMAND_DECODER, VERB_UPDATE_IN_PLACE
from schemas.subjects import LEASE_PARTITION, LEASE_WATCHER
from services.bus import Bus
from services.chaoscheck import ApiChecker
from services.kube import Kube
from services.lease import LeaseStore
from services.observe import Snapshot, poll, restart_count, snapshot
from services.planner.partitions import partition_of
from services.settings import PlannerSettings
from services.stack import Stack
from tests.component.helpers import all_events
from tests.e2e.helpers import NS, cloneset, set_image, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

TTL = 3
PARTITIONS = PlannerSettings().partitions
HA = {"env": {"KRUISEBUS_LEASE_TTL": str(TTL)}, "sim_args": ("--stop-delay", "1")}
STRATEGY = {"type": "InPlaceIfPossible", "maxUnavailable": 1}


class Tap:
    """Every command the planners publish (core NATS sees JetStream publishes as they land)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str], set[str]] = {}  # (verb, pod, revision) -> command ids

    async def on_cmd(self, msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            cmd = COMMAND_DECODER.decode(msg.data)
            self.ids.setdefault((cmd.verb, cmd.pod, cmd.revision), set()).add(cmd.id)


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[Bus]:
    bus = await stack.connect(name="test-ha")
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def checker(kube: Kube) -> AsyncIterator[ApiChecker]:
    api = await ApiChecker(kube).start()
    try:
        yield api
    finally:
        await api.stop()


async def holders(bus: Bus) -> dict[str, str]:
    """Lease key -> holder, as the bucket says now (`watcher`, `planner.partition.<p>`, ...)."""
    store = LeaseStore(bus, LeaseStore.bucket_of(bus))
    out = {key: rec.holder for key, rec in (await store.live("planner")).items()}
    record, _ = await store.read(LEASE_WATCHER)
    if record is not None:
        out[LEASE_WATCHER] = record.holder
    return out


def partition_key(uid: str) -> str:
    return f"{LEASE_PARTITION}.{partition_of(uid, PARTITIONS)}"


def planners_of(leases: dict[str, str]) -> Counter[str]:
    return Counter(h for k, h in leases.items() if k.startswith(LEASE_PARTITION))


async def create_all(kube: Kube, names: list[str], replicas: int) -> dict[str, str]:
    """Create the CloneSets, wait until they run; name -> uid."""
    for name in names:
        await kube.create(CLONESETS, NS, cloneset(name, replicas=replicas, strategy=STRATEGY))
    return {name: (await settled(kube, name, replicas, timeout=90)).cloneset.metadata.uid for name in names}


async def check_outcome(
    kube: Kube,
    bus: Bus,
    checker: ApiChecker,
    names: list[str],
    replicas: int,
    before: dict[str, Snapshot],
    revisions: int = 1,
) -> None:
    """Every rollout completed, each pod updated in place exactly once per revision (same uid,
    restartCount + revisions, one `update-in-place` in the rollout log per pod and revision), and the
    checker saw no breach of the invariants (budget, partition, duplicates, surge left)."""
    for name in names:
        after = await settled(kube, name, replicas, timeout=120)
        old = {p.metadata.uid: restart_count(p) for p in before[name].pods}
        assert sorted(old) == sorted(p.metadata.uid for p in after.pods), f"{name}: pods were recreated"
        for pod in after.pods:
            assert restart_count(pod) == old[pod.metadata.uid] + revisions, (
                f"{pod.metadata.name} updated twice"
            )
    updates = Counter(
        (ev.pod, ev.revision)
        for ev in await all_events(bus, bus.subjects.events_all())
        if ev.type == VERB_UPDATE_IN_PLACE
    )
    assert updates and max(updates.values()) == 1, [k for k, n in updates.items() if n > 1]
    assert len(updates) == len(names) * replicas * revisions
    checker.checker.check_settled()
    assert checker.checker.violations == [], "\n".join(v.describe() for v in checker.checker.violations)


@pytest.mark.parametrize("stack", [{**HA, "watchers": 2, "planners": 2}], indirect=True)
async def test_standbys_take_over_from_a_sigkilled_watcher_and_partition_owner(
    stack: Stack, kube: Kube, admin: Bus, checker: ApiChecker
) -> None:
    names = ["ha-a", "ha-b", "ha-c"]
    uids = await create_all(kube, names, 4)
    before = {name: await snapshot(kube, NS, name) for name in names}
    for name in names:
        await set_image(kube, name, "nginx:1.21")

    # mid-rollout: the first pod of ha-a is on the new revision, the rollout is not done
    await poll(
        lambda: snapshot(kube, NS, "ha-a"),
        lambda s: 0 < len(s.updated()) < 4,
        timeout=60,
        interval=0.05,
        what="ha-a's rollout under way",
    )
    wanted = (LEASE_WATCHER, partition_key(uids["ha-a"]))
    # a lease between an expiry and its renewal is briefly absent from the bucket on a loaded machine
    leases = await poll(lambda: holders(admin), lambda h: all(k in h for k in wanted), timeout=20,
                        interval=0.05, what="the watcher's and ha-a's partition's leases held")
    watcher, planner = leases[LEASE_WATCHER], leases[wanted[1]]
    assert {watcher, planner} <= set(stack.procs), leases
    killed = time.monotonic()
    await asyncio.gather(stack.kill(watcher, forget=True), stack.kill(planner, forget=True))

    async def taken_over() -> dict[str, str]:
        return await holders(admin)

    after = await poll(
        taken_over,
        lambda h: (
            h.get(LEASE_WATCHER) not in (None, watcher)
            and h.get(partition_key(uids["ha-a"])) not in (None, planner)
        ),
        timeout=TTL + 5,
        interval=0.05,
        what="the standbys to take the leases over",
    )
    took = time.monotonic() - killed
    print(f"leases taken over {took:.2f}s after the SIGKILL (TTL {TTL}s)")
    # the server drops a lease TTL after its last renewal (at most TTL after the kill); the standby
    # polls every TTL/10 and the claims step every TTL/4
    assert took <= TTL + TTL / 4 + 1.0, f"takeover after {took:.1f}s (lease TTL {TTL}s)"
    survivor = next(p for p in stack.procs if p.startswith("planner"))
    assert after[partition_key(uids["ha-a"])] == survivor
    await poll(
        lambda: holders(admin),
        lambda h: planners_of(h) == Counter({survivor: PARTITIONS}),
        timeout=2 * TTL,
        interval=0.1,
        what=f"{survivor} to hold every partition",
    )
    await check_outcome(kube, admin, checker, names, 4, before)
    stack.check_alive()


@pytest.mark.parametrize("stack", [HA], indirect=True)
async def test_planners_scale_1_3_1_mid_rollout_without_a_decision_lost_or_made_twice(
    stack: Stack, kube: Kube, admin: Bus, checker: ApiChecker
) -> None:
    names = [f"scale-{i}" for i in range(20)]
    uids = await create_all(kube, names, 3)
    before = {name: await snapshot(kube, NS, name) for name in names}
    tap = Tap()
    sub = await admin.nc.subscribe(admin.subjects.command_all(), cb=tap.on_cmd)
    try:
        # the rollouts stop at partition 2 (one pod of three updated) until the planners have scaled, so
        # that every CloneSet is mid-rollout when its partition changes hands, however slowly the new
        # planner processes start on a loaded machine
        for name in names:
            await kube.patch(CLONESETS, NS, name, {"spec": {"updateStrategy": {"partition": 2}}}, "merge")
            await set_image(kube, name, "nginx:1.21")
        # 1 -> 3: the new replicas take their share of the partitions from the first one
        await asyncio.gather(stack.start_service("planner-2"), stack.start_service("planner-3"))
        # a fair split (no replica above its share, ceil(16/3)): the new replicas claim their share one
        # lease at a time, so "each holds one" would let 20 random uids all stay with the first planner
        share = -(-PARTITIONS // 3)
        split = await poll(
            lambda: holders(admin),
            lambda h: len(planners_of(h)) == 3
            and sum(planners_of(h).values()) == PARTITIONS
            and max(planners_of(h).values()) <= share,
            timeout=30,
            interval=0.1,
            what="the partitions split fairly among 3 planners",
        )
        owners = {split[partition_key(uid)] for uid in uids.values()}
        # which replica a uid hashes to is chance; that some CloneSets changed hands is not (the first
        # planner keeps at most 6 of 16 partitions, so 20 uids all staying with it is a 3e-9 chance)
        assert owners - {"planner"}, f"no CloneSet changed hands: all are planned by {owners}"
        in_progress = [n for n in names if len((await snapshot(kube, NS, n)).updated()) < 3]
        assert in_progress == names, "a rollout went past its partition"
        for name in names:
            await kube.patch(CLONESETS, NS, name, {"spec": {"updateStrategy": {"partition": 0}}}, "merge")
        # 3 -> 1: a graceful scale-in hands the partitions back at once (no TTL to wait out)
        codes = await asyncio.gather(stack.terminate("planner-2"), stack.terminate("planner-3"))
        assert list(codes) == [0, 0], codes
        back = await poll(
            lambda: holders(admin),
            lambda h: planners_of(h) == Counter({"planner": PARTITIONS}),
            timeout=2 * TTL,
            interval=0.1,
            what="the remaining planner to hold every partition",
        )
        assert back
        await check_outcome(kube, admin, checker, names, 3, before)
    finally:
        await sub.unsubscribe()
    # one decision per pod update: every planner that planned a pod's update decided the same command
    twice = {k: ids for k, ids in tap.ids.items() if k[0] == VERB_UPDATE_IN_PLACE and len(ids) > 1}
    assert not twice, twice
    stack.check_alive()


@pytest.mark.parametrize("stack", [{**HA, "watchers": 2, "planners": 2, "executors": 2}], indirect=True)
async def test_sigterm_mid_rollout_hands_over_at_once_and_finishes_in_flight_work(
    stack: Stack, kube: Kube, admin: Bus, checker: ApiChecker
) -> None:
    """A graceful stop (rolling update, scale-in, node drain) of the active watcher, a planner and an
    executor: each exits 0, its leases pass to the standby without waiting out the TTL, and the
    rollout completes as if nothing happened."""
    names = ["term-a", "term-b"]
    await create_all(kube, names, 4)
    before = {name: await snapshot(kube, NS, name) for name in names}
    for name in names:
        await set_image(kube, name, "nginx:1.21")
    await poll(
        lambda: snapshot(kube, NS, "term-a"),
        lambda s: 0 < len(s.updated()) < 4,
        timeout=60,
        interval=0.05,
        what="term-a's rollout under way",
    )
    leases = await holders(admin)
    watcher = leases[LEASE_WATCHER]
    planner = next(iter(planners_of(leases)))
    stopped = time.monotonic()
    codes = await asyncio.gather(
        stack.terminate(watcher), stack.terminate(planner), stack.terminate("executor")
    )
    assert list(codes) == [0, 0, 0], codes
    standby = next(p for p in stack.procs if p.startswith("watcher"))
    other = next(p for p in stack.procs if p.startswith("planner"))
    await poll(
        lambda: holders(admin),
        lambda h: h.get(LEASE_WATCHER) == standby and planners_of(h) == Counter({other: PARTITIONS}),
        timeout=TTL,
        interval=0.05,
        what="the leases handed over",
    )
    took = time.monotonic() - stopped
    assert took < TTL, f"handed over after {took:.1f}s: the leases were left to expire"
    await check_outcome(kube, admin, checker, names, 4, before)
    stack.check_alive()
