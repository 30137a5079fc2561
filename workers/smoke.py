"""The QEMU smoke check after a cross build: compile a small C program against the fresh
linux-libc-dev headers with the arch's cross compiler, and run it under qemu-user.

It proves the headers work for that arch and that this worker's emulation works.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from kbo.arches import ArchInfo
from kbo.workers import runner, sandbox

PROGRAM = r"""
#include <linux/version.h>
#include <asm/unistd.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void)
{
    long pid = syscall(__NR_getpid);
    if (pid != (long)getpid())
        return 1;
    printf("kbo-smoke %d\n", LINUX_VERSION_CODE);
    return 0;
}
"""


def version_code(upstream: str) -> int:
    parts = [int(p) for p in [*upstream.split("."), "0", "0"][:3]]
    return (parts[0] << 16) + (parts[1] << 8) + min(parts[2], 255)


# Run in the job's sandbox, as the build user: the headers are build output, so
# unpacking them, compiling against them and running the result all stay inside.
SCRIPT = """set -eu
dpkg-deb -x "/build/$1" /tmp/headers
echo "kbo: compiling the smoke program against $1"
"$2" -O1 -I"/tmp/headers/usr/include/$5" -I/tmp/headers/usr/include /kbo/smoke.c -o /tmp/smoke
echo "kbo: running it under $3"
"$3" -L "$4" /tmp/smoke
"""


def check(
    info: ArchInfo, libc_dev: str, spec: sandbox.Spec, work: Path, upstream: str, log: BinaryIO
) -> str | None:
    """None when the check passed, else why it failed. ``libc_dev`` is the package's
    name in the build directory; ``work`` a directory of the worker's own."""
    log.write(b"\n== kbo step qemu-smoke ==\n")
    if info.qemu_binary is None:
        return f"qemu smoke check: no qemu-user target for {info.name}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "smoke.c").write_text(PROGRAM)
    triplet = info.cross_prefix.rstrip("-")
    # Dynamically linked and run against the cross libc: qemu-alpha 7.2 crashes on static
    # alpha binaries, and the dynamic path is the one real userland takes.
    argv = ["sh", "-c", SCRIPT, "smoke", libc_dev, info.cross_gcc, info.qemu_binary]
    argv += [f"/usr/{triplet}", triplet]
    spec = replace(spec, binds=(*spec.binds, (str(work), "/kbo", False)))
    output = work / "smoke.out"
    with output.open("w+b") as out:
        ran = runner.run(sandbox.wrap(argv, spec), log=out, timeout=300, no_output_timeout=300)
        out.seek(0)
        text = out.read(1 << 20).decode(errors="replace")
    log.write(text.encode())
    want = f"kbo-smoke {version_code(upstream)}"
    if ran.ok and want in text:
        return None
    if "kbo: running it under" not in text:
        return f"qemu smoke check: compiling against the new headers {ran.describe()}"
    return f"qemu smoke check: {info.qemu_binary} {ran.describe()}, expected {want!r}"
