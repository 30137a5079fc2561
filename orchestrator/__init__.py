"""The coordinator's side of kbo: its state, what snapshots queue, mail and the status page."""
