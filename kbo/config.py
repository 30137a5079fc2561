"""kbo's configuration: one flat TOML table, every key overridable by ``KBO_<KEY>``.

Looked up in order: ``--config FILE``, ``$KBO_CONFIG``, ``~/.config/kbo/kbo.toml``,
``/etc/kbo/kbo.toml``. With none of them, kbo runs embedded: a filesystem broker
and SQLite state under ``state_dir``, nothing to install or start.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbo.errors import UserError

SEARCH_PATH = (Path("~/.config/kbo/kbo.toml"), Path("/etc/kbo/kbo.toml"))


def _default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/kbo"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(xdg) / "kbo")


@dataclass(frozen=True)
class Config:
    # Where messages travel: "" is the embedded filesystem broker, else redis://...
    broker_url: str = ""
    state_dir: str = field(default_factory=_default_state_dir)
    # The packaging repository kbo tracks: a path or a URL the coordinator can fetch.
    repository: str = ""
    branch: str = "main"
    # Arches whose staleness kbo reports; empty means every arch in the matrix at HEAD.
    tracked_arches: tuple[str, ...] = ()
    default_recipe: str = "kbuild-smoke"
    recipe_dirs: tuple[str, ...] = ()
    build_slots: int = 1
    # A running job's worker renews its lease; a lapsed lease means a new attempt.
    lease_seconds: int = 300
    sweep_seconds: int = 15
    max_attempts: int = 3
    # The longest any build may run; the broker's visibility timeout stays above it.
    max_build_seconds: int = 24 * 3600
    # How long `kbo submit` waits for the coordinator to answer.
    reply_seconds: int = 60
    # Where workers fetch orig tarballs, and .dsc files that vouch for their checksums.
    mirror: str = "http://deb.debian.org/debian"
    dsc_dirs: tuple[str, ...] = ()
    # Builds drop to this user inside their namespaces ("" keeps root there).
    build_user: str = "kbo-build"
    # Downloads, prepared trees and chroots; "" is <state_dir>/cache.
    cache_dir: str = ""
    keep_failed_builds: int = 0
    # Mail: failure reports, FIXED mails and the stale digest. No smtp_host, no mail.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: str = "none"  # none, starttls or tls
    smtp_user: str = ""
    smtp_password: str = ""
    mail_from: str = "kbo@localhost"
    mail_to: tuple[str, ...] = ()
    # Extra recipients per arch, as "arch:address" (e.g. "alpha:debian-alpha@lists.debian.org").
    arch_recipients: tuple[str, ...] = ()
    mail_authors: int = 0
    # Failures of several flavours with the same error within this many seconds: one mail.
    fold_seconds: int = 60
    # Where people read full logs: "<log_url>/<arch>_<featureset>_<flavour>/<attempt>.log.gz".
    log_url: str = ""
    # Snapshot runs (`kbo snapshot`, cron or the coordinator's beat): how far an arch may
    # fall behind before it is built whatever the capacity ("alpha:5" commits, "hppa:7d"
    # days, "*:20" any arch), and how many jobs may be in flight at once (0: no limit).
    max_staleness: tuple[str, ...] = ()
    snapshot_max_jobs: int = 0
    # When set, `kbo coordinator --beat` runs snapshots on this schedule (a crontab line
    # such as "0 */6 * * *", or seconds), and a cron-started `kbo snapshot --scheduled`
    # refuses to run: one scheduler at a time.
    snapshot_schedule: str = ""
    # The coordinator rewrites this HTML status page after each snapshot and each result.
    status_page: str = ""
    # A snapshot also mails the digest of arches not OK, at most once per this many hours.
    digest_hours: int = 0
    source: str = "defaults"

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else self.state_path / "cache"

    @property
    def database(self) -> Path:
        return self.state_path / "kbo.sqlite"

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def visibility_timeout(self) -> int:
        """Above the longest build, so the broker never re-delivers a build still running."""
        return self.max_build_seconds + 3600


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the first config file found, then apply ``KBO_*`` environment overrides."""
    env = os.environ if environ is None else environ
    chosen = path or env.get("KBO_CONFIG")
    values: dict[str, Any] = {}
    source = "defaults"
    candidates = [Path(chosen)] if chosen else [p.expanduser() for p in SEARCH_PATH]
    for candidate in candidates:
        if candidate.is_file() or chosen:
            values = _read_file(candidate)
            source = str(candidate)
            break
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    for name, value in values.items():
        if name not in fields:
            raise UserError(f"unknown setting {name!r}", source)
        values[name] = _coerce(name, value, fields[name].type, source)
    for name, f in fields.items():
        env_value = env.get(f"KBO_{name.upper()}")
        if env_value is not None:
            values[name] = _coerce(name, env_value, f.type, f"KBO_{name.upper()}")
    return Config(**values, source=source)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("config file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config: {e}", str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed config: {e}", str(path)) from None


def _coerce(name: str, value: Any, kind: Any, where: str) -> Any:
    """Check a value from TOML or the environment against the field's declared type."""
    kind = str(kind)
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind.startswith("tuple"):
        if isinstance(value, str):
            return tuple(v for v in value.replace(",", " ").split() if v)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    raise UserError(f"{name} must be {_describe(kind)}, not {value!r}", where)


def _describe(kind: str) -> str:
    return {"int": "a whole number", "str": "a string"}.get(kind, "a list of strings")
