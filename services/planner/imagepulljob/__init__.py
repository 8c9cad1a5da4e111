"""ImagePullJob, NodeImage and workload pre-download: OpenKruise's image pre-download as pure decisions."""
