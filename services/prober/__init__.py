"""`kruisebus prober --node NAME`: kruise-daemon's pod probes for one node (Kruise's `pkg/daemon/podprobe`).

One process per node follows the PodProbeMarkers and its node's pods on KB_STATE, runs their exec,
tcpSocket and httpGet probes, and publishes each probe's result to KB_PROBE when it changes (and again
after Kruise's re-report interval); the planner turns results into pod markers.
"""
