"""Build-host side of kbo: what this host can build, and (later) how it builds it."""
