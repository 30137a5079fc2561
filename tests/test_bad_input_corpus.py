"""A corpus of bad input, across every verb and every class of setting: each is refused
with one line on stderr and the documented status (2, or 3 for a service that cannot be
reached), never a traceback, and a refused submit or snapshot records no run.

Every case runs as a real ``kbo`` process in embedded mode, on a real packaging
repository, and is refused before any long-lived service starts.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, KBO, reachable_by_workers
from tests.services import Cluster, free_port

VERBS = (
    "matrix",
    "arches",
    "submit",
    "snapshot",
    "status",
    "worker",
    "coordinator",
    "chroot",
    "import-dsc",
    "digest",
    "outbox",
    "config",
    "cancel",
    "retry",
    "bisect",
    "workers",
)
KEY_CLASSES = (
    "int range",
    "enum",
    "list",
    "pattern",
    "url",
    "unknown key",
    "malformed toml",
    "environment",
)
NOT_UTF8 = b"\xff\xfeoops"


@dataclass(frozen=True)
class Case:
    """One refused command line. ``{name}`` in an argument or setting is filled in from
    the files the corpus makes (see ``World.places``)."""

    name: str
    argv: tuple[str | bytes, ...]
    says: str
    status: int = 2
    settings: dict[str, str] = field(default_factory=dict)  # key -> TOML value
    extra: str = ""  # raw text appended to the config file
    env: dict[str, str | bytes] = field(default_factory=dict)
    key_class: str | None = None

    @property
    def verb(self) -> str:
        return next((a for a in self.argv if isinstance(a, str) and a in VERBS), "kbo")


def c(name: str, *argv: str | bytes, says: str, **kw: Any) -> Case:
    return Case(name, argv, says, **kw)


UNREACHABLE = {"broker_url": '"redis://:hunter2@127.0.0.1:{free_port}/0"'}

CASES = [
    # -- kbo itself --------------------------------------------------------------------
    c("status-unknown-option", "status", "--bogus", says="unrecognized arguments: --bogus"),
    c("unknown-verb", "confg", "--check", says="argument VERB: invalid choice: 'confg'"),
    c("no-verb", says="the following arguments are required: VERB"),
    c("global-json-for-a-verb-without-json", "--json", "chroot", "alpha", says="has no JSON"),
    c("global-config-empty", "--config", "", "status", says="--config"),
    # -- matrix ------------------------------------------------------------------------
    c("matrix-source-empty", "matrix", "", says="SOURCE: empty"),
    c("matrix-source-not-utf8", "matrix", NOT_UTF8, says="not UTF-8"),
    c("matrix-rev-empty", "matrix", "{repo}", "--rev", "", says="--rev: empty"),
    c("matrix-arch-empty", "matrix", "{repo}", "--arch", "", says="--arch: empty"),
    c("matrix-arch-only-commas", "matrix", "{repo}", "--arch", ",", says="--arch: empty"),
    c(
        "matrix-arch-glob-matches-nothing",
        "matrix",
        "{repo}",
        "--arch",
        "vax*",
        says="--arch 'vax*' matches no arch in the matrix (it has: alpha, amd64,",
    ),
    c(
        "matrix-flavour-glob-matches-nothing",
        "matrix",
        "{repo}",
        "--flavour",
        "zzz",
        says="--flavour 'zzz' matches no flavour in the matrix (it has: ",
    ),
    c("matrix-featureset-empty", "matrix", "{repo}", "--featureset", "", says="empty"),
    c("matrix-dsc-binary-garbage", "matrix", "{garbage_dsc}", says="not a text file"),
    c("matrix-dsc-not-utf8-text", "matrix", "{latin1_dsc}", says="not UTF-8"),
    c("matrix-dsc-member-dotdot", "matrix", "{dotdot_dsc}", says="debian/../../escape"),
    c("matrix-dsc-member-absolute", "matrix", "{absolute_dsc}", says="/etc/kbo-escape"),
    c("matrix-unknown-option", "matrix", "{repo}", "--arches", "alpha", says="--arches"),
    # -- arches ------------------------------------------------------------------------
    c("arches-extra-argument", "arches", "alpha", says="unrecognized arguments: alpha"),
    c("arches-unknown-option", "arches", "--html", "x", says="unrecognized arguments"),
    # -- submit ------------------------------------------------------------------------
    c("submit-arch-empty", "submit", "--arch", "", says="--arch: empty"),
    c("submit-arch-empty-in-list", "submit", "--arch", "alpha,", says="--arch: empty"),
    c("submit-arch-unknown", "submit", "--arch", "vax", says="--arch vax: unknown"),
    c("submit-rev-empty", "submit", "--arch", "alpha", "--rev", "", says="--rev: empty"),
    c("submit-source-empty", "submit", "", "--arch", "alpha", says="SOURCE: empty"),
    c("submit-source-missing", "submit", "{tmp}/no-repo", "--arch", "alpha", says="no-repo"),
    c("submit-reason-not-utf8", "submit", "--arch", "alpha", "--reason", NOT_UTF8, says="UTF-8"),
    c("submit-reason-empty", "submit", "--arch", "alpha", "--reason", "", says="--reason: empty"),
    c("submit-recipe-empty", "submit", "--arch", "alpha", "--recipe", "", says="--recipe: empty"),
    c("submit-flavour-not-utf8", "submit", "--flavour", NOT_UTF8, says="not UTF-8"),
    c("submit-timeout-zero", "submit", "--wait", "--timeout", "0", says="of at least 1"),
    c("submit-timeout-words", "submit", "--wait", "--timeout", "2s", says="whole number"),
    c("submit-timeout-without-wait", "submit", "--timeout", "5", says="--timeout goes with"),
    c(
        "submit-glob-matches-nothing-lists-what-exists",
        "submit",
        "--arch",
        "x32",
        says="--arch 'x32' matches no arch in the matrix (it has: alpha, amd64,",
    ),
    c(
        "submit-broker-unreachable",
        "submit",
        "--arch",
        "alpha",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    # -- cancel and retry --------------------------------------------------------------
    c("cancel-no-id", "cancel", says="required: RUN|JOB"),
    c("cancel-id-empty", "cancel", "", says="RUN|JOB: empty"),
    c("cancel-id-words", "cancel", "alpha", says="neither a job id (a number) nor a run id"),
    c("cancel-id-negative", "cancel", "-1", says="'-1' is neither a job id"),
    c("cancel-id-zero", "cancel", "0", says="'0' is not a job id"),
    c("cancel-id-huge", "cancel", "9" * 30, says="is not a job id"),
    c("cancel-id-not-utf8", "cancel", NOT_UTF8, says="not UTF-8"),
    c("cancel-job-unknown", "cancel", "4242", says="no job 4242"),
    c(
        "cancel-run-unknown",
        "cancel",
        "0b7e7c52-5a8a-4d8e-9d0c-3f3c1c2d9e11",
        says="no run 0b7e7c52-5a8a-4d8e-9d0c-3f3c1c2d9e11",
    ),
    c("retry-no-id", "retry", says="required: JOB"),
    c("retry-id-words", "retry", "alpha", says="'alpha' is not a job id"),
    c("retry-id-a-run", "retry", "0b7e7c52-5a8a-4d8e-9d0c-3f3c1c2d9e11", says="not a job id"),
    c("retry-id-fraction", "retry", "1.5", says="'1.5' is not a job id"),
    c("retry-job-unknown", "retry", "4242", says="no job 4242"),
    c(
        "retry-broker-unreachable",
        "retry",
        "1",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    # -- bisect ------------------------------------------------------------------------
    c("bisect-no-id", "bisect", says="required: JOB"),
    c("bisect-id-words", "bisect", "alpha", says="'alpha' is not a job id"),
    c("bisect-max-steps-zero", "bisect", "1", "--max-steps", "0", says="from 1 to 64"),
    c("bisect-max-steps-words", "bisect", "1", "--max-steps", "many", says="from 1 to 64"),
    c("bisect-job-unknown", "bisect", "4242", says="no job 4242"),
    c(
        "bisect-through-kbo-web",
        "bisect",
        "1",
        says="kbo web serves no bisection yet",
        settings={"server": '"http://127.0.0.1:9"'},
    ),
    c(
        "bisect-broker-unreachable",
        "bisect",
        "1",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    c("workers-extra-argument", "workers", "alpha", says="unrecognized arguments: alpha"),
    c("workers-unknown-option", "workers", "--live", says="unrecognized arguments: --live"),
    # -- snapshot ----------------------------------------------------------------------
    c("snapshot-max-jobs-negative", "snapshot", "--max-jobs", "-1", says="--max-jobs"),
    c("snapshot-max-jobs-zero", "snapshot", "--max-jobs", "0", says="at least 1"),
    c("snapshot-max-jobs-words", "snapshot", "--max-jobs", "many", says="whole number"),
    c("snapshot-recipe-empty", "snapshot", "--recipe", "", says="--recipe: empty"),
    c("snapshot-recipe-unknown", "snapshot", "--dry-run", "--recipe", "nosuch", says="nosuch"),
    c(
        "snapshot-scheduled-while-beat-owns-it",
        "snapshot",
        "--scheduled",
        says="snapshot_schedule is set",
        settings={"snapshot_schedule": '"3600"'},
    ),
    c(
        "snapshot-no-repository",
        "snapshot",
        says="no repository configured",
        env={"KBO_REPOSITORY": ""},
    ),
    c(
        "snapshot-broker-unreachable",
        "snapshot",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    # -- status ------------------------------------------------------------------------
    c(
        "status-html-under-a-file-deeper",
        "status",
        "--html",
        "{file}/a/s.html",
        says="a-file is not",
    ),
    c("status-html-is-a-directory", "status", "--html", "{tmp}", says="is a directory"),
    c("status-html-under-a-file", "status", "--html", "{file}/s.html", says="not a directory"),
    c("status-html-empty", "status", "--html", "", says="--html: empty"),
    c("status-recipe-empty", "status", "--recipe", "", says="--recipe: empty"),
    # -- worker ------------------------------------------------------------------------
    c("worker-slots-negative", "worker", "--arch", "alpha", "--slots", "-1", says="--slots"),
    c("worker-slots-zero", "worker", "--arch", "alpha", "--slots", "0", says="from 1 to 64"),
    c("worker-slots-too-many", "worker", "--arch", "alpha", "--slots", "65", says="from 1 to 64"),
    c("worker-slots-words", "worker", "--arch", "alpha", "--slots", "two", says="whole number"),
    c("worker-arch-empty", "worker", "--arch", "", says="--arch: empty"),
    c("worker-arch-unknown", "worker", "--arch", "vax", says="unknown architecture 'vax'"),
    c("worker-arch-and-auto", "worker", "--arch", "alpha", "--auto", says="not allowed with"),
    c("worker-neither-arch-nor-auto", "worker", says="one of the arguments"),
    c("worker-executor-unknown", "worker", "--auto", "--executor", "kvm", says="invalid choice"),
    c("worker-name-empty", "worker", "--arch", "alpha", "--name", "", says="--name: empty"),
    c(
        "worker-broker-unreachable",
        "worker",
        "--arch",
        "alpha",
        "--unchecked",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    # -- coordinator -------------------------------------------------------------------
    c("coordinator-extra-argument", "coordinator", "now", says="unrecognized arguments: now"),
    c("coordinator-beat-without-schedule", "coordinator", "--beat", says="--beat needs"),
    c(
        "coordinator-beat-with-a-bad-schedule",
        "coordinator",
        "--beat",
        says="snapshot_schedule 'every day' is neither",
        settings={"snapshot_schedule": '"every day"'},
    ),
    c(
        "coordinator-broker-unreachable",
        "coordinator",
        says="cannot reach the broker",
        status=3,
        settings=UNREACHABLE,
    ),
    # -- chroot ------------------------------------------------------------------------
    c(
        "worker-user-missing",
        "worker",
        "--arch",
        "alpha",
        "--unchecked",
        says="will not build as root, and the worker user 'kbo-nobody' does not exist",
        settings={"worker_user": '"kbo-nobody"'},
    ),
    c(
        "worker-user-root",
        "worker",
        "--arch",
        "alpha",
        "--unchecked",
        says="builds never run as root",
        settings={"worker_user": '"root"'},
    ),
    c("chroot-arch-unknown", "chroot", "vax", says="unknown architecture 'vax'"),
    c("chroot-arch-empty", "chroot", "", says="ARCH: empty"),
    c("chroot-arch-path", "chroot", "../etc", says="unknown architecture"),
    c("chroot-no-arch", "chroot", says="required: ARCH"),
    # -- import-dsc --------------------------------------------------------------------
    c(
        "import-branch-invalid",
        "import-dsc",
        "{hello_dsc}",
        "{tmp}/imp1",
        "--branch",
        "a..b",
        says="--branch 'a..b'",
    ),
    c(
        "import-branch-empty",
        "import-dsc",
        "{hello_dsc}",
        "{tmp}/imp2",
        "--branch",
        "",
        says="--branch: empty",
    ),
    c("import-dsc-missing", "import-dsc", "{tmp}/none.dsc", "{tmp}/imp3", says="none.dsc"),
    c("import-dsc-garbage", "import-dsc", "{garbage_dsc}", "{tmp}/imp4", says="not a text file"),
    c(
        "import-dsc-member-dotdot",
        "import-dsc",
        "{dotdot_dsc}",
        "{tmp}/imp5",
        says="debian/../../escape",
    ),
    c("import-dest-not-empty", "import-dsc", "{hello_dsc}", "{tmp}", says="is not empty"),
    c("import-dest-empty", "import-dsc", "{hello_dsc}", "", says="DEST: empty"),
    # -- digest and outbox -------------------------------------------------------------
    c("digest-without-smtp-host", "digest", says="no smtp_host configured"),
    c("digest-recipe-empty", "digest", "--recipe", "", says="--recipe: empty"),
    c("outbox-extra-argument", "outbox", "sent", says="unrecognized arguments: sent"),
    c(
        "outbox-bad-setting",
        "outbox",
        says="smtp_port must be a whole number from 1 to 65535, not 0",
        settings={"smtp_port": "0"},
    ),
    # -- config, and every class of setting --------------------------------------------
    c("config-no-mode", "config", says="one of the arguments --check"),
    c("config-json-without-show", "config", "--check", "--json", says="--json goes with --show"),
    c(
        "config-file-missing",
        "config",
        "--check",
        "--config",
        "{tmp}/none.toml",
        says="config file not found",
    ),
    c(
        "config-file-is-a-directory",
        "config",
        "--check",
        "--config",
        "{tmp}",
        says="is a directory",
    ),
    c(
        "config-file-not-utf8",
        "config",
        "--check",
        "--config",
        "{latin1_toml}",
        says="cannot read config",
    ),
    *(
        c(
            f"setting-{key}-{label}",
            "config",
            "--check",
            says=says,
            settings={key: value},
            key_class=kind,
        )
        for kind, key, label, value, says in (
            ("int range", "build_slots", "negative", "-1", "from 1 to 64, not -1"),
            ("int range", "build_slots", "too-many", "65", "from 1 to 64, not 65"),
            ("int range", "build_slots", "fraction", "1.5", "build_slots must be a whole"),
            ("int range", "build_slots", "boolean", "true", "build_slots must be a whole"),
            ("int range", "smtp_port", "too-big", "70000", "from 1 to 65535"),
            ("int range", "max_build_seconds", "short", "59", "of at least 60, not 59"),
            ("int range", "keep_failed_builds", "two", "2", "from 0 to 1, not 2"),
            ("enum", "smtp_security", "misspelt", '"starttsl"', "one of 'none', 'starttls'"),
            ("enum", "smtp_security", "number", "1", "one of 'none'"),
            ("list", "tracked_arches", "string", '"alpha"', "tracked_arches must be a list"),
            ("list", "dsc_dirs", "of-numbers", "[1, 2]", "dsc_dirs must be a list of strings"),
            ("list", "tracked_arches", "capitals", '["Alpha"]', "tracked_arches must be a list"),
            ("list", "max_staleness", "words", '["alpha:soon"]', "max_staleness must be a list"),
            ("list", "arch_recipients", "no-address", '["alpha"]', "arch_recipients must be"),
            ("pattern", "default_recipe", "spaces", '"kbuild smoke"', "default_recipe must be"),
            ("pattern", "branch", "empty", '""', "branch must be a non-empty string"),
            ("pattern", "state_dir", "empty", '""', "state_dir must be a non-empty string"),
            ("pattern", "state_dir", "nul", '"a\\u0000b"', "state_dir must not hold"),
            ("pattern", "mail_from", "list", '["a@b"]', "mail_from must be a non-empty string"),
            ("url", "mirror", "ftp", '"ftp://ftp.debian.org/debian"', "mirror must be a string"),
            ("url", "broker_url", "amqp", '"amqp://guest@host//"', "must start with redis://"),
            ("url", "broker_url", "port-word", '"redis://h:port/0"', "port that is not a number"),
            ("url", "broker_url", "port-big", '"redis://h:99999/0"', "port that is not a number"),
            ("url", "broker_url", "no-scheme", '"buildd-master:6379"', "must start with redis"),
            ("url", "broker_url", "space", '" redis://:hunter2@h:6379/0"', "hold no spaces"),
            ("url", "broker_url", "slashes", '"redis//:hunter2@h:6379/0"', "must start with"),
            ("url", "broker_url", "db-word", '"redis://:hunter2@h:6379/x"', "database that is"),
            ("url", "broker_url", "query", '"redis://:hunter2@h/0?foo=bar"', "option foo=bar"),
            ("url", "broker_url", "no-host", '"redis://:hunter2@:6379/0"', "names no host"),
            ("url", "repository", "list", '["https://u:hunter2@h/x"]', "repository must be"),
            ("url", "mirror", "ftp-pw", '"ftp://u:hunter2@h/x"', "mirror must be a string"),
        )
    ),
    c(
        "snapshot-repository-url-unreachable-keeps-its-password",
        "snapshot",
        "--dry-run",
        says="cannot fetch",
        status=3,
        env={"KBO_REPOSITORY": "https://kbo:hunter2@127.0.0.1:{free_port}/linux.git"},
    ),
    c(
        "submit-source-url-unreachable-keeps-its-password",
        "submit",
        "https://kbo:hunter2#x@127.0.0.1:{free_port}/linux.git",
        "--arch",
        "alpha",
        says="cannot fetch",
        status=3,
    ),
    c("config-file-fifo", "config", "--check", "--config", "{fifo}", says="not a regular file"),
    c("config-file-dev-zero", "config", "--check", "--config", "/dev/zero", says="regular file"),
    c("matrix-path-too-long", "matrix", "{tmp}/" + "y" * 300, says="File name too long"),
    c("import-dsc-dest-in-proc", "import-dsc", "{hello_dsc}", "/proc/kbo-x", says="/proc"),
    c("matrix-dsc-bad-checksum-entry", "matrix", "{bad_sums_dsc}", says="Checksums-Sha256"),
    c("status-html-fifo", "status", "--html", "{fifo}", says="not a regular file: refusing"),
    c(
        "setting-unknown",
        "config",
        "--check",
        says="unknown setting 'colour'",
        extra='colour = "blue"\n',
        key_class="unknown key",
    ),
    c(
        "setting-misspelt",
        "config",
        "--check",
        says="(did you mean lease_seconds?)",
        extra="lease_second = 3\n",
        key_class="unknown key",
    ),
    c(
        "setting-table",
        "config",
        "--check",
        says="unknown setting 'smtp'",
        extra='[smtp]\nhost = "mail"\n',
        key_class="unknown key",
    ),
    c(
        "toml-no-value",
        "config",
        "--check",
        says="malformed config",
        extra="build_slots =\n",
        key_class="malformed toml",
    ),
    c(
        "toml-duplicate-key",
        "config",
        "--check",
        says="malformed config",
        extra='branch = "again"\n',
        key_class="malformed toml",
    ),
    c(
        "toml-unclosed-string",
        "config",
        "--check",
        says="malformed config",
        extra='mirror = "http://\n',
        key_class="malformed toml",
    ),
    *(
        c(
            f"env-{name.lower()}-{label}",
            "config",
            "--check",
            says=says,
            env={name: value},
            key_class="environment",
        )
        for name, label, value, says in (
            ("KBO_BUILD_SLOTS", "words", "many", "KBO_BUILD_SLOTS: build_slots must be"),
            ("KBO_BUILD_SLOTS", "negative", "-1", "from 1 to 64, not '-1'"),
            ("KBO_SMTP_SECURITY", "misspelt", "ssl", "KBO_SMTP_SECURITY: smtp_security"),
            ("KBO_TRACKED_ARCHES", "capitals", "alpha, Hppa", "KBO_TRACKED_ARCHES"),
            ("KBO_BROKER_URL", "amqp", "amqp://x", "KBO_BROKER_URL: broker_url must start"),
            ("KBO_MIRROR", "ftp", "ftp://x", "KBO_MIRROR: mirror must be"),
            ("KBO_BRANCH", "not-utf8", NOT_UTF8, "KBO_BRANCH: not UTF-8"),
            ("KBO_CONFIG", "missing", "{tmp}/none.toml", "config file not found"),
            ("KBO_CONFIG", "empty", "", "KBO_CONFIG: the config file name is empty"),
        )
    ),
]


class World:
    """The packaging repository, the config and the bad files every case draws on."""

    def __init__(self, tmp: Path) -> None:
        self.cluster = Cluster(tmp)
        self.tmp = tmp
        self.base = self.cluster.config.read_text()
        bad = tmp / "bad"
        bad.mkdir()
        (bad / "garbage.dsc").write_bytes(bytes(range(256)) * 8)
        hello = (FIXTURES / "hello-2.10-3/hello_2.10-3.dsc").read_text()
        (bad / "latin1.dsc").write_bytes(hello.replace("Santiago", "Santi\xe1go").encode("latin-1"))
        (bad / "latin1.toml").write_bytes('worker_user = "j\xfcrgen"\n'.encode("latin-1"))
        (bad / "a-file").write_text("not a directory\n")
        fifo = bad / "fifo.toml"
        os.mkfifo(fifo)
        bad_sums = bad / "bad-sums.dsc"  # a Checksums-Sha256 entry that is one word
        bad_sums.write_text(hello.replace("Checksums-Sha256:\n", "Checksums-Sha256:\n zzz\n", 1))
        self.places = {
            "repo": str(self.cluster.repo),
            "tmp": str(tmp),
            "file": str(bad / "a-file"),
            "hello_dsc": str(FIXTURES / "hello-2.10-3/hello_2.10-3.dsc"),
            "garbage_dsc": str(bad / "garbage.dsc"),
            "latin1_dsc": str(bad / "latin1.dsc"),
            "latin1_toml": str(bad / "latin1.toml"),
            "dotdot_dsc": str(hostile_dsc(bad / "dotdot", "debian/../../escape")),
            "absolute_dsc": str(hostile_dsc(bad / "absolute", "/etc/kbo-escape")),
            "free_port": str(free_port()),
            "fifo": str(fifo),
            "bad_sums_dsc": str(bad_sums),
        }

    def fill(self, value: str) -> str:
        return value.format(**self.places) if "{" in value else value

    def run(self, case: Case, index: int) -> subprocess.CompletedProcess[bytes]:
        env: dict[str, str | bytes] = dict(self.cluster.env)
        if case.settings or case.extra:
            lines = [ln for ln in self.base.splitlines() if ln.split(" = ")[0] not in case.settings]
            lines += [f"{k} = {self.fill(v)}" for k, v in case.settings.items()]
            config = self.tmp / f"case-{index}.toml"
            config.write_text("\n".join(lines) + "\n" + case.extra)
            env["KBO_CONFIG"] = str(config)
        env |= {k: self.fill(v) if isinstance(v, str) else v for k, v in case.env.items()}
        argv = [self.fill(a) if isinstance(a, str) else a for a in case.argv]
        return subprocess.run(
            [str(KBO), *argv], capture_output=True, env=env, timeout=60, check=False
        )

    def runs_recorded(self) -> int:
        if not (self.tmp / "state" / "kbo.sqlite").exists():
            return 0
        return int(self.cluster.query("SELECT COUNT(*) FROM runs")[0][0])


def hostile_dsc(directory: Path, member: str) -> Path:
    """A source package whose debian tarball holds ``member`` beside a real changelog."""
    directory.mkdir()
    tarball = directory / "linux_6.1.176-1.debian.tar.xz"
    changelog = (FIXTURES / "linux-6.1.176-1/debian/changelog").read_bytes()
    with tarfile.open(tarball, "w:xz") as tar:
        for name, data in (("debian/changelog", changelog), (member, b"owned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = tarball.read_bytes()
    size, md5, sha256 = (
        len(data),
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    dsc = directory / "linux_6.1.176-1.dsc"
    dsc.write_text(
        "Format: 3.0 (quilt)\nSource: linux\nVersion: 6.1.176-1\n"
        f"Checksums-Sha256:\n {sha256} {size} {tarball.name}\n"
        f"Files:\n {md5} {size} {tarball.name}\n"
    )
    return dsc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(reachable_by_workers(tmp_path_factory.mktemp("corpus")))
    yield made
    made.cluster.stop_all()


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(CASES)), ids=[case.name for case in CASES]
)
def test_bad_input_is_refused_in_one_line(world: World, index: int, case: Case) -> None:
    result = world.run(case, index)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == case.status, (result.returncode, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kbo: "), lines[0]
    assert world.fill(case.says) in lines[0], (case.says, lines[0])
    assert result.stdout == b"", result.stdout
    assert "hunter2" not in lines[0]
    if case.verb in ("submit", "snapshot"):
        assert world.runs_recorded() == 0


def test_the_corpus_covers_every_verb_and_every_class_of_setting() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.verb for case in CASES} == {"kbo", *VERBS}
    assert {case.key_class for case in CASES} - {None} == set(KEY_CLASSES)


def test_an_internal_error_is_one_line_naming_its_log_and_exits_70(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbo.cli import main, matrix_cmd

    def broken(args: object) -> int:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(matrix_cmd, "run", broken)
    monkeypatch.delenv("KBO_DEBUG", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["matrix", str(tmp_path)]) == 70
    finally:
        signal.signal(signal.SIGTERM, handler)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("kbo: internal error: RuntimeError: a bug over two lines")
    assert "KBO_DEBUG=1" in lines[0]
    logs = list(tmp_path.glob("kbo-internal-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    assert "Traceback" in logs[0].read_text() and "RuntimeError" in logs[0].read_text()
