"""SidecarSet: injection, revisions and the sidecar update controller (Kruise's `pkg/control/sidecarcontrol`, `pkg/controller/sidecarset`)."""
