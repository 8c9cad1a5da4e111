"""The PodProbeMarker's pure decision code: validation, which pods and probes it matches, and the pod
markers and conditions its probe results become (Kruise's `pkg/controller/podprobemarker` and
`pkg/controller/nodepodprobe`)."""
