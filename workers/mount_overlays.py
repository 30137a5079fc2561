"""Mount overlays, then exec the rest of the argv: run by ``sandbox.wrap`` as root of a
fresh user and mount namespace (``unshare --map-root-user``), never as real root.

Usage: ``mount_overlays.py LOWER:UPPER:WORK:MERGED... -- COMMAND...``. Standard library
only, started with ``python3 -I -S``: it runs once per build step, so it stays cheap.
"""

from __future__ import annotations

import ctypes
import os
import sys


def main(argv: list[str]) -> None:
    split = argv.index("--")
    libc = ctypes.CDLL(None, use_errno=True)
    for spec in argv[:split]:
        lower, upper, work, merged = spec.split(":")
        options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
        if libc.mount(b"overlay", merged.encode(), b"overlay", 0, options) != 0:
            errno = ctypes.get_errno()
            print(f"kbo sandbox: overlay on {merged}: {os.strerror(errno)}", file=sys.stderr)
            sys.exit(125)
    command = argv[split + 1 :]
    os.execvp(command[0], command)  # noqa: S606 (an argv list, by design)


if __name__ == "__main__":
    main(sys.argv[1:])
