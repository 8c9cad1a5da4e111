"""One rollout is one trace: watcher, planner and executor in-process with an in-memory exporter.

The rollout's trace id is derived from (CloneSet uid, update revision); the planner's plan spans,
every command's process span, the executor's API calls and the watcher's states of the updated pods
(restart observed, readiness regained) all land in it, under a real root span that the planner emits
when the rollout completes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from schemas.cloneset import CloneSet
from schemas.messages import CLONESETS
from schemas.traceids import rollout_trace_id
from services.bus import Bus
from services.demo import load_sample
from services.executor.service import run_executor
from services.kube import Kube
from services.natsd import NatsServer
from services.observe import poll, snapshot
from services.planner.service import Planner, run_planner
from services.telemetry import rollout_root_span_id
from services.watcher.service import run_watcher
from sim.cluster import SimCluster


async def test_a_rollout_is_one_trace(tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    prefix = f"t{uid}"
    async with SimCluster(nodes=2, tmpdir=tmp_path, pull_delay=0.05, start_delay=0.05) as cluster:
        kube = await Kube.connect(str(cluster.kubeconfig_path), tracer_provider=provider)
        buses = [await Bus.connect(nats_server.url, name=f"trace-{i}", prefix=prefix, tracer_provider=provider)
                 for i in range(3)]
        await buses[0].ensure_streams()
        stop = asyncio.Event()
        planner = Planner(buses[1], tracer_provider=provider)
        tasks = [asyncio.create_task(run_watcher(kube, buses[0])),
                 asyncio.create_task(run_planner(buses[1], stop=stop, planner=planner)),
                 asyncio.create_task(run_executor(kube, buses[2], stop=stop))]
        try:
            body = load_sample()
            body["spec"]["replicas"] = 2  # type: ignore[index]
            body["spec"]["updateStrategy"] = {"type": "InPlaceIfPossible"}  # type: ignore[index]
            cs = msgspec.json.decode(await kube.create(CLONESETS, "default", body), type=CloneSet)
            await poll(lambda: snapshot(kube, "default", "sample"), lambda s: s.ready == 2, timeout=30,
                       what="2 ready pods")
            await kube.patch(CLONESETS, "default", "sample", {"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.21"}]}}}}, "merge")
            done = await poll(lambda: snapshot(kube, "default", "sample"),
                              lambda s: s.cloneset.status.updated_ready_replicas == 2
                              and s.cloneset.status.current_revision == s.cloneset.status.update_revision
                              and s.cloneset.status.observed_generation == s.cloneset.metadata.generation
                              and s.cloneset.status.update_revision != "" and len(s.updated()) == 2,
                              timeout=30, what="the rollout to complete")
            revision = done.cloneset.status.update_revision
            trace_id = rollout_trace_id(cs.metadata.uid, revision)
            root_id = rollout_root_span_id(trace_id)
            await poll(lambda: asyncio.sleep(0, exporter.get_finished_spans()),
                       lambda spans: any(s.context.span_id == root_id for s in spans), timeout=10,
                       what="the rollout root span")
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for b in buses:
                await b.close()
            await kube.close()

    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    root = next(s for s in spans if s.context.span_id == root_id)
    assert root.name == "rollout default/sample" and root.parent is None

    process = [s for s in spans if s.name.startswith("process ") and s.kind == SpanKind.CONSUMER
               and s.attributes.get("kruisebus.verb") == "update-in-place"]
    assert len(process) == 2, [s.name for s in spans]
    assert all(s.parent is not None and s.parent.span_id == root_id for s in process)

    api_calls = [s for s in spans if s.kind == SpanKind.CLIENT and s.name.startswith("patch pods")]
    pods_patched = {s.attributes.get("k8s.pod.name") for s in api_calls}
    assert pods_patched == {p.metadata.name for p in done.pods}
    process_ids = {s.context.span_id for s in process}
    assert all(s.parent is not None and s.parent.span_id in process_ids for s in api_calls
               if s.attributes.get("kruisebus.verb") == "update-in-place")

    plans = [s for s in spans if s.name == "plan default/sample"]
    assert plans and all(s.attributes.get("kruisebus.revision") == revision for s in plans)
    sends = [s for s in spans if s.name.startswith("send ") and s.kind == SpanKind.PRODUCER]
    assert any(s.parent is not None and s.parent.span_id in {p.context.span_id for p in plans} for s in sends)
    # the watcher's pod states during the rollout: each updated pod seen restarted and ready again
    states = [s for s in sends if "state" in s.name and s.attributes.get("k8s.pod.name")]
    assert all(s.parent is not None and s.parent.span_id == root_id for s in states)
    assert all(s.attributes.get("kruisebus.revision") == revision for s in states)
    back = {s.attributes["k8s.pod.name"] for s in states
            if s.attributes.get("kruisebus.pod.ready") is True and (s.attributes.get("kruisebus.pod.restarts") or 0) >= 1}
    assert back == {p.metadata.name for p in done.pods}, [(s.attributes.get("k8s.pod.name"),
                                                           s.attributes.get("kruisebus.pod.ready"),
                                                           s.attributes.get("kruisebus.pod.restarts")) for s in states]
