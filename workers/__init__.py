"""The build host's side of kbo: what this host can build, and building it in a sandbox."""
