"""The planner kit: the pure mechanics OpenKruise shares across its workload controllers (its
`pkg/util/*`), shared here by every workload planner instead of copied into each.

Int-or-percent rounding (`intstr`), selectors, feature gates, pod readiness and availability
(`podstate`), JSON-patch building for pods (`podpatch`), the in-place update protocol (`inplace`), lifecycle
hooks, update and scale-in ordering (`sort`), expectations and time arithmetic; ControllerRevisions
(`revision`: hashing, naming, equality, history) over Go's encoding of pod templates (`gojson`), status
conditions (`conditions`), field errors with Kubernetes' messages (`fielderrors`) and the result of a
pass (`plan`). Like the workload packages, nothing here does I/O or reads a clock.
"""
