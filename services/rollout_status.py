"""`kruisebus rollout status`: wait for a CloneSet like `kubectl rollout status` waits for a Deployment.

Done means the status reflects the latest spec (observedGeneration) and every pod the partition allows
is updated and ready: `updatedReadyReplicas >= expectedUpdatedReplicas`, and with no partition the
current revision has caught up with the update revision.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas.cloneset import CloneSet
from services.kube import Kube, KubeError
from services.observe import Snapshot, poll, snapshot


def rollout_done(cs: CloneSet) -> bool:
    st = cs.status
    if st.observed_generation < cs.metadata.generation or not st.update_revision:
        return False
    expected = st.expected_updated_replicas
    replicas = cs.spec.replicas if isinstance(cs.spec.replicas, int) else 1
    if st.updated_ready_replicas < expected or st.replicas != replicas:
        return False
    return expected < replicas or st.current_revision == st.update_revision


async def rollout_status(kubeconfig: str | None, namespace: str, name: str, *, timeout: float,
                         console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    kube = await Kube.connect(kubeconfig)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task(f"clone/{name}: updated and ready", total=None)

            def on_sample(s: Snapshot) -> None:
                st = s.cloneset.status
                total = st.replicas if st.current_revision == st.update_revision else st.expected_updated_replicas
                progress.update(task, total=total or None, completed=min(st.updated_ready_replicas, total))

            snap = await poll(lambda: snapshot(kube, namespace, name), lambda s: rollout_done(s.cloneset),
                              timeout=timeout, interval=0.5, on_sample=on_sample,
                              what=f"clone/{name} rollout")
        st = snap.cloneset.status
        if st.current_revision != st.update_revision:
            console.print(f"partitioned roll out complete: {st.updated_ready_replicas} new pods have been updated...")
        else:
            console.print(f'clone "{name}" successfully rolled out')
        return 0
    except KubeError as e:
        console.print(f"error: {e}")
        return 1
    except TimeoutError as e:
        console.print(f"error: {e}")
        return 1
    finally:
        await kube.close()
