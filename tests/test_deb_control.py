"""Reading a built package's control file: its ar headers checked before anything reads
them, its control tarball decompressed only so far. Each case is what a build can leave."""

from __future__ import annotations

import io
import lzma
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
from debian.debfile import DebError

from kbo.workers import artifacts

CONTROL = b"Package: probe\nVersion: 1.0\nArchitecture: alpha\nMaintainer: x <x@y>\n"
CONTROL += b"Description: a probe\n"


def ar_header(name: bytes, size: bytes) -> bytes:
    return (
        name.ljust(16)
        + b"0".ljust(12)
        + b"0".ljust(6) * 2
        + b"100644".ljust(8)
        + (size.ljust(10) + b"`\n")
    )


def ar(*members: tuple[bytes, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        out += ar_header(name, str(len(data)).encode()) + data + b"\n" * (len(data) % 2)
    return out


def control_tar(*extra: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in extra:
            tar.addfile(info)
        info = tarfile.TarInfo("./control")
        info.size = len(CONTROL)
        tar.addfile(info, io.BytesIO(CONTROL))
    return buffer.getvalue()


def read_in_time(path: Path, seconds: float = 20) -> object:
    """read_control's answer (or exception); a test failure, not a hang, if it loops."""
    answer: list[object] = []

    def read() -> None:
        try:
            answer.append(artifacts.read_control(path))
        except Exception as e:
            answer.append(e)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"read_control still reading {path.name} after {seconds} s"
    return answer[0]


def test_packages_made_by_dpkg_deb_and_by_ar_are_read(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN/control").write_bytes(CONTROL)
    for compression in ("xz", "gzip", "none"):
        deb = tmp_path / f"probe-{compression}.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(package), deb],
            check=True,
            capture_output=True,
        )
        assert artifacts.read_control(deb)["Package"] == "probe"
    (tmp_path / "debian-binary").write_bytes(b"2.0\n")
    (tmp_path / "control.tar.xz").write_bytes(lzma.compress(control_tar()))
    (tmp_path / "data.tar.xz").write_bytes(lzma.compress(b"\0" * 1024))
    subprocess.run(
        ["ar", "rc", "by-ar.deb", "debian-binary", "control.tar.xz", "data.tar.xz"],
        cwd=tmp_path,
        check=True,
    )
    assert artifacts.read_control(tmp_path / "by-ar.deb")["Package"] == "probe"


GOOD_CONTROL = ("control.tar.xz", lzma.compress(control_tar()))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"!<arch>\n" + ar_header(b"debian-binary", b"-1") + b"2", "size b'-1'"),
        (b"!<arch>\n" + ar_header(b"debian-binary", b"0x10"), "size b'0x10'"),
        (b"!<arch>\n" + ar_header(b"debian-binary", b" 4") + b"2.0\n", "size b' 4'"),
        (b"!<arch>\n" + ar_header(b"debian-binary", b"4")[:-2] + b"\n\n2.0\n", "terminator"),
        (b"!<arch>\n" + ar_header(b"debian-binary", b"99") + b"2.0\n", "goes past the end"),
        (b"!<arch>\n", "ends before its control member"),
        (b"<arch>\n" + b"x" * 100, "does not start with the ar magic"),
        (ar((b"control.tar.xz", GOOD_CONTROL[1])), "'debian-binary' first"),
        (ar((b"debian-binary", b"3.0\n"), (b"control.tar.xz", GOOD_CONTROL[1])), "format '3.0'"),
        (ar((b"debian-binary", b"2.0\n"), (b"data.tar.xz", b"")), "'data.tar.xz'"),
        (ar((b"debian-binary", b"2.0\n"), (b"control.tar.zst", b"")), "control.tar.zst"),
    ],
    ids=[
        "negative-size",
        "hex-size",
        "space-before-size",
        "bad-terminator",
        "size-past-end",
        "no-members",
        "bad-magic",
        "control-first",
        "deb-format-3",
        "data-before-control",
        "zstd",
    ],
)
def test_odd_ar_headers_are_refused_at_once_in_one_message(
    tmp_path: Path, data: bytes, says: str
) -> None:
    deb = tmp_path / "odd.deb"
    deb.write_bytes(data)
    start = time.monotonic()
    error = read_in_time(deb)
    assert isinstance(error, ValueError | DebError), error
    assert says in str(error)
    assert "\n" not in str(error)
    assert time.monotonic() - start < 2


def test_the_68_byte_package_that_made_python_debian_loop(tmp_path: Path) -> None:
    """A size of -60 sent python-debian's ar reader back to the same header, for ever."""
    deb = tmp_path / "loop.deb"
    deb.write_bytes(b"!<arch>\n" + ar_header(b"debian-binary", b"-60"))
    assert deb.stat().st_size == 68
    error = read_in_time(deb, 10)
    assert isinstance(error, DebError), error
    assert str(error) == "its ar member 'debian-binary' has size b'-60', not a decimal number"


def test_a_control_tarball_of_concatenated_xz_streams_fails_fast(tmp_path: Path) -> None:
    """A tar member claiming 64 GiB, its data an endless run of xz streams of zeros: the
    control file after it is never reached, and nothing decompresses past the bound."""
    big = tarfile.TarInfo("./big")
    big.size = 64 << 30
    head = io.BytesIO()
    with tarfile.open(fileobj=head, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(big)  # the header only: its data follows as more streams
    zeros = lzma.compress(b"\0" * (1 << 20))
    bomb = lzma.compress(head.getvalue()[:512]) + zeros * 256  # 256 MiB decompressed
    deb = tmp_path / "bomb.deb"
    data = (b"data.tar.xz", lzma.compress(b"\0" * 1024))
    deb.write_bytes(ar((b"debian-binary", b"2.0\n"), (b"control.tar.xz", bomb), data))
    start = time.monotonic()
    error = read_in_time(deb)
    assert isinstance(error, DebError), error
    assert "decompresses to more than 17 MiB" in str(error)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    ("control", "says"),
    [
        (b"Package: probe\nArchitecture: " + b"a" * (1 << 19) + b"\n", "Architecture is 'aaa"),
        (b"Package: probe\nArchitecture: alpha\n multi-line\n", "Architecture is 'alpha\\n"),
        (b"Architecture: alpha\n", "Package is missing"),
    ],
    ids=["huge-arch", "multi-line-arch", "no-package"],
)
def test_a_package_must_name_itself_and_its_arch_in_short_words(
    tmp_path: Path, control: bytes, says: str
) -> None:
    """Its name and arch go into the report, and into the first error that says a
    package is for another arch: half a MiB, or a line break, of the build's choosing."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("./control")
        info.size = len(control)
        tar.addfile(info, io.BytesIO(control))
    build = tmp_path / "build"
    build.mkdir()
    (build / "probe_1.0_alpha.deb").write_bytes(
        ar((b"debian-binary", b"2.0\n"), (b"control.tar.xz", lzma.compress(buffer.getvalue())))
    )
    with pytest.raises(
        artifacts.BadPackage, match=r"probe_1\.0_alpha\.deb is not a valid Debian package"
    ) as e:
        artifacts.collect(build, tmp_path / "store", 1 << 30)
    assert says in str(e.value)
    assert len(str(e.value)) < 200


def test_a_package_with_its_name_and_arch_is_collected(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "probe_1.0_alpha.deb").write_bytes(
        ar((b"debian-binary", b"2.0\n"), (b"control.tar.xz", GOOD_CONTROL[1]))
    )
    (found,) = artifacts.collect(build, tmp_path / "store", 1 << 30)
    assert (found.package, found.architecture) == ("probe", "alpha")
