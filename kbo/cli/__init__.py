"""``kbo <verb>``: argument parsing, and the one place errors become a line and a status."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from kbo.cli import (
    arches_cmd,
    bisect_cmd,
    chroot_cmd,
    config_cmd,
    coordinator_cmd,
    import_cmd,
    jobs_cmd,
    mail_cmd,
    matrix_cmd,
    recipes_cmd,
    snapshot_cmd,
    status_cmd,
    submit_cmd,
    token_cmd,
    web_cmd,
    worker_cmd,
    workers_cmd,
)
from kbo.cli.global_options import add_global_options, add_verbose, verbose
from kbo.cli.global_options import apply as apply_global_options
from kbo.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_SERVICE, KboError, UserError
from kbo.text import escaped, is_utf8, mask_passwords, one_line

EPILOG = """\
exit status:
  0  success (for status: every tracked arch is OK)
  1  not OK: a build failed, or an arch is stale or failing
  2  bad input: a malformed file or config, an unknown name, a missing path,
     an unwritable state directory
  3  a service or tool could not be reached or failed (broker, database, git, dpkg)
  124 submit --wait --timeout: stopped waiting; the jobs stay queued or running
  70 an internal error (a bug in kbo): one line naming the file that holds the
     traceback; KBO_DEBUG=1 prints the traceback instead"""


class Parser(argparse.ArgumentParser):
    """Bad arguments are bad input like any other: one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"kbo: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="kbo",
        description="Build every Debian architecture of the kernel package, so none falls behind.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    commands = (
        matrix_cmd,
        arches_cmd,
        submit_cmd,
        snapshot_cmd,
        status_cmd,
        jobs_cmd,
        bisect_cmd,
        worker_cmd,
        workers_cmd,
        coordinator_cmd,
        web_cmd,
        token_cmd,
        chroot_cmd,
        import_cmd,
        mail_cmd,
        config_cmd,
        recipes_cmd,
    )
    for command in commands:
        command.register(verbs)
    for verb in verbs.choices.values():
        add_verbose(verb)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (cron's timeout, systemd) unwinds like an error: cleanups run.
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _refuse_undecodable(args)
        apply_global_options(args)
        status: int = args.run(args)
    except KboError as e:
        print(f"kbo: {mask_passwords(one_line(str(e)))}", file=sys.stderr)
        return e.exit_status
    except OSError as e:  # a path a user gave that the checks before did not foresee
        if os.environ.get("KBO_DEBUG") or verbose(args):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"kbo: {mask_passwords(one_line(f'{where}{e.strerror or e}'))}", file=sys.stderr)
        return EXIT_BAD_INPUT if e.errno in USER_ERRNOS else EXIT_SERVICE
    except KeyboardInterrupt:
        print("kbo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # the last line of defence: one line, unless asked for more
        if os.environ.get("KBO_DEBUG") or verbose(args):
            raise
        what = f"{type(e).__name__}: {mask_passwords(one_line(str(e)))}"
        print(f"kbo: internal error: {what} ({_keep_traceback()})", file=sys.stderr)
        return EXIT_INTERNAL
    return status


# OS errors that mean the path given is wrong (exit 2); any other is the machine's (exit 3).
USER_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP,
     errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.EINVAL, errno.ENXIO}
)  # fmt: skip


def _refuse_undecodable(args: argparse.Namespace) -> None:
    """The argument types refuse bytes that are not UTF-8; this catches any argument
    without one, before a verb passes it on (a database, a message, a log)."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not is_utf8(item):
                raise UserError(f"{name.replace('_', '-')}: not UTF-8: {escaped(item)}")


def _keep_traceback() -> str:
    """Write the traceback being handled to a file; say where, or how to see it."""
    import tempfile
    import traceback

    try:
        fd, log = tempfile.mkstemp(prefix="kbo-internal-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(f"kbo {' '.join(sys.argv[1:])}\n")
            traceback.print_exc(file=out)
    except OSError:
        return "KBO_DEBUG=1 shows the traceback"
    return f"traceback in {log}; KBO_DEBUG=1 shows it here"


if __name__ == "__main__":
    sys.exit(main())
