"""`rollout status` of a CloneSet: what `kubectl rollout status` says of a Deployment, read off the
CloneSet's status the way `kubectl kruise rollout status` reads it (kruise-tools'
`pkg/internal/polymorphichelpers/rollout_status.go`).

Done means the status reflects the latest spec (observedGeneration), the CloneSet has exactly its
replicas, and every pod the partition allows is updated and ready (`updatedReadyReplicas >=
expectedUpdatedReplicas`); with no partition the current revision has also caught up with the update
revision. Until then each change of the status prints one line saying what is awaited, as kubectl's
status viewers do, so a script can follow a rollout and a person can see where it stands.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.cloneset import CloneSet, decode_cloneset
from schemas.messages import CLONESETS
from services.kube import Kube
from services.observe import poll

NEVER = 0.0  # --timeout 0: wait as long as it takes (kubectl's default)


def _replicas(cs: CloneSet) -> int:
    return cs.spec.replicas if isinstance(cs.spec.replicas, int) else 1


def status_message(cs: CloneSet) -> tuple[str, bool]:
    """One line on where the rollout stands, and whether it is complete."""
    st, name = cs.status, cs.metadata.name
    if st.observed_generation < cs.metadata.generation or not st.update_revision:
        return "Waiting for CloneSet spec update to be observed...", False
    replicas, expected = _replicas(cs), st.expected_updated_replicas
    # pods the partition keeps on the current revision (at creation every pod is new: not partitioned)
    partitioned = expected < replicas and st.current_revision != st.update_revision
    what = "partitioned roll out" if partitioned else f'clone "{name}" rollout'
    if st.replicas > replicas:
        return f"Waiting for {what} to finish: {st.replicas - replicas} old pods are pending termination...", False
    if st.replicas < replicas:
        return f"Waiting for {what} to finish: {st.replicas} of {replicas} pods have been created...", False
    if st.updated_ready_replicas < expected:
        if st.updated_replicas < expected:
            return (f"Waiting for {what} to finish: {st.updated_replicas} out of {expected} new pods have been "
                    "updated..."), False
        return (f"Waiting for {what} to finish: {st.updated_ready_replicas} of {expected} updated pods are "
                "ready..."), False
    if partitioned:
        return f"partitioned roll out complete: {st.updated_ready_replicas} new pods have been updated...", True
    if st.current_revision != st.update_revision:  # every pod updated; the status has yet to say so
        return f"Waiting for {what} to finish: current revision {st.current_revision} is not yet {st.update_revision}...", False
    return f'clone "{name}" successfully rolled out: {replicas} pods at revision {st.update_revision}', True


def rollout_done(cs: CloneSet) -> bool:
    return status_message(cs)[1]


async def wait_rollout(kube: Kube, namespace: str, name: str, *, watch: bool, timeout: float,
                       out: Callable[[str], None]) -> None:
    """Print the status (each change of it while `watch`) until the rollout is complete.
    Raises KubeNotFound if the CloneSet is missing or deleted meanwhile, TimeoutError after `timeout`
    seconds (`NEVER`: no limit)."""
    last = ""

    async def fetch() -> CloneSet:
        return decode_cloneset(await kube.get(CLONESETS, namespace, name))

    def on_sample(cs: CloneSet) -> None:
        nonlocal last
        message, _ = status_message(cs)
        if message != last:
            out(message)
            last = message

    if not watch:
        on_sample(await fetch())
        return
    await poll(fetch, rollout_done, timeout=timeout if timeout > 0 else float("inf"), interval=0.5,
               on_sample=on_sample, what=f"clone/{name} rollout")
