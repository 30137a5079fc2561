"""The QEMU smoke check after a cross build: compile a small C program against the fresh
linux-libc-dev headers with the arch's cross compiler, and run it under qemu-user.

It proves the headers work for that arch and that this worker's emulation works.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import BinaryIO

from kbo.arches import ArchInfo
from kbo.workers import runner

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


def check(info: ArchInfo, libc_dev: Path, work: Path, upstream: str, log: BinaryIO) -> str | None:
    """None when the check passed, else why it failed."""
    log.write(b"\n== kbo step qemu-smoke ==\n")
    headers = work / "headers"
    headers.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(libc_dev), str(headers)], check=True)
    source, binary = work / "smoke.c", work / "smoke"
    source.write_text(PROGRAM)
    includes = [f"-I{d}" for d in sorted((headers / "usr/include").glob("*-linux-*"))]
    # Dynamically linked and run against the cross libc: qemu-alpha 7.2 crashes on static
    # alpha binaries, and the dynamic path is the one real userland takes.
    compile_argv = [
        info.cross_gcc,
        "-O1",
        *includes,
        f"-I{headers / 'usr/include'}",
        str(source),
        "-o",
        str(binary),
    ]
    built = runner.run(compile_argv, log=log, timeout=300, no_output_timeout=300)
    if not built.ok:
        return f"qemu smoke check: compiling against the new headers {built.describe()}"
    if info.qemu_binary is None:
        return f"qemu smoke check: no qemu-user target for {info.name}"
    output = work / "smoke.out"
    with output.open("w+b") as out:
        sysroot = f"/usr/{info.cross_prefix.rstrip('-')}"
        ran = runner.run(
            [info.qemu_binary, "-L", sysroot, str(binary)],
            log=out,
            timeout=120,
            no_output_timeout=120,
        )
        out.seek(0)
        text = out.read().decode(errors="replace")
    log.write(text.encode())
    want = f"kbo-smoke {version_code(upstream)}"
    if not ran.ok or want not in text:
        return f"qemu smoke check: {info.qemu_binary} {ran.describe()}, expected {want!r}"
    return None
