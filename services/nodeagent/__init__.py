"""The per-node agent (`kruisebus executor --node NAME`): node work from KB_NODE through the runtime seam."""
