"""kbo's configuration: one flat TOML table, every key overridable by ``KBO_<KEY>``.

Looked up in order: ``--config FILE``, ``$KBO_CONFIG``, ``~/.config/kbo/kbo.toml``,
``/etc/kbo/kbo.toml``. With none of them, kbo runs embedded: a filesystem broker
and SQLite state under ``state_dir``, nothing to install or start.

The schema is declared once, below: each setting's type, range or allowed values and a
one-line description. Every command validates the settings when it starts; ``kbo config
--check`` and ``--show`` use the same schema, and the README's table is generated from
it. msgspec checks it: declarations like pydantic's, at a quarter of pydantic's start-up
cost, which every ``kbo`` command pays.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import msgspec

from kbo.errors import UserError
from kbo.text import NAME, escaped, is_utf8, mask_passwords, read_small_file

SEARCH_PATH = (Path("~/.config/kbo/kbo.toml"), Path("/etc/kbo/kbo.toml"))
SECRETS = frozenset({"smtp_password", "token"})  # never printed; URLs also lose their password


def _default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/kbo"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(xdg) / "kbo")


def _s(description: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **constraints)


Seconds = Annotated[int, msgspec.Meta(ge=1)]
Names = tuple[Annotated[str, msgspec.Meta(pattern=f"^{NAME}$")], ...]


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    broker_url: Annotated[
        str, _s('where messages travel: "" is embedded mode, else redis:// or rediss://')
    ] = ""
    state_dir: Annotated[
        str, _s("kbo's state: the database, logs, embedded broker", min_length=1)
    ] = msgspec.field(default_factory=_default_state_dir)
    repository: Annotated[
        str, _s("the packaging repository kbo tracks: a path or a URL the coordinator fetches")
    ] = ""
    branch: Annotated[str, _s("the tracked branch", min_length=1)] = "main"
    tracked_arches: Annotated[
        Names, _s("arches whose standing kbo reports (empty: every arch in the matrix)")
    ] = ()
    default_recipe: Annotated[
        str, _s("how jobs are built unless a request says", pattern=f"^{NAME}$")
    ] = "kbuild-smoke"
    ladder: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern=f"^{NAME}$")], ...],
        _s("recipes snapshots climb per arch, cheapest first ([]: default_recipe alone)"),
    ] = ()
    recipe_dirs: Annotated[tuple[str, ...], _s("more folders of recipes, before kbo's own")] = ()
    build_slots: Annotated[int, _s("builds a worker runs at once", ge=1, le=64)] = 1
    lease_seconds: Annotated[
        int, _s("a building worker's lease, renewed every third of it; lapsed: a new attempt", ge=1)
    ] = 300
    sweep_seconds: Annotated[int, _s("how often the coordinator looks for lapsed leases", ge=1)] = (
        15
    )
    max_attempts: Annotated[
        int, _s("leases of a job that may lapse, since it was asked for, before it ends lost", ge=1)
    ] = 3
    infra_retries: Annotated[
        int, _s("retries of a job whose host failed it (infra-error) before it ends so", ge=0)
    ] = 3
    retry_seconds: Annotated[
        int,
        _s(
            "seconds before an infra-error is retried, doubling each time up to 64 times this"
            " (a dep-wait's wait)",
            ge=1,
        ),
    ] = 30
    max_build_seconds: Annotated[
        int,
        _s("the longest any build may run (the broker's visibility timeout stays above)", ge=60),
    ] = 24 * 3600
    reply_seconds: Annotated[int, _s("how long a client waits for the coordinator", ge=1)] = 60
    mirror: Annotated[
        str,
        _s(
            "the Debian mirror: orig tarballs, `import-dsc PACKAGE/SUITE`",
            pattern="^(https?|file)://",
        ),
    ] = "http://deb.debian.org/debian"
    archive_keyring: Annotated[
        str, _s("the keys a suite's signed Release must carry (`import-dsc PACKAGE/SUITE`)")
    ] = "/usr/share/keyrings/debian-archive-keyring.gpg"
    dsc_dirs: Annotated[
        tuple[str, ...], _s(".dsc files that vouch for orig tarballs' checksums")
    ] = ()
    worker_user: Annotated[
        str, _s("`kbo worker` started as root runs as this user; it never builds as root")
    ] = "kbo"
    job_memory_mb: Annotated[int, _s("memory a build's process may map, in MiB", ge=64)] = 8192
    job_processes: Annotated[int, _s("processes a build may run at once", ge=16)] = 2048
    job_disk_gb: Annotated[
        int, _s("disk a build may use under its job directory, in GiB", ge=1)
    ] = 40
    cache_dir: Annotated[
        str, _s('downloads, prepared trees, chroots, ccache ("": <state_dir>/cache)')
    ] = ""
    keep_failed_builds: Annotated[
        int, _s("1 keeps a failed build's directory for inspection", ge=0, le=1)
    ] = 0
    smtp_host: Annotated[str, _s('where mail goes ("": no mail)')] = ""
    smtp_port: Annotated[int, _s("the SMTP server's port", ge=1, le=65535)] = 25
    smtp_security: Annotated[
        Literal["none", "starttls", "tls"], _s("plain SMTP, STARTTLS, or TLS from the start")
    ] = "none"
    smtp_user: Annotated[str, _s('SMTP login ("": none)')] = ""
    smtp_password: Annotated[str, _s("SMTP password (never shown)")] = ""
    mail_from: Annotated[str, _s("the From of kbo's mail", min_length=1)] = "kbo@localhost"
    mail_to: Annotated[tuple[str, ...], _s("who gets every report and the digest")] = ()
    arch_recipients: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern=f"^{NAME}:.+@.+$")], ...],
        _s('more recipients per arch, as "arch:address"'),
    ] = ()
    admin_mail_to: Annotated[
        tuple[str, ...], _s("who hears of a host failing builds (repeated infra-errors)")
    ] = ()
    host_alert_errors: Annotated[
        int, _s("infra-errors on one host within a day that mail admin_mail_to, once", ge=1)
    ] = 3
    mail_authors: Annotated[
        int, _s("1 also mails the authors of the suspect commits", ge=0, le=1)
    ] = 0
    fold_seconds: Annotated[
        int, _s("flavours failing alike within this many seconds share one mail", ge=0)
    ] = 60
    bisect_max_steps: Annotated[
        int,
        _s("builds a bisection for a new failure may take (0: only `kbo bisect` bisects)", ge=0),
    ] = 8
    bisect_mail_wait: Annotated[
        int,
        _s("seconds a failure mail waits for its bisection, when it should take that long", ge=0),
    ] = 1800
    log_url: Annotated[
        str, _s('where people read logs: "<log_url>/<job key>/<attempt>.log.gz"')
    ] = ""
    max_staleness: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9*]+:\d+(\.\d+)?d?$")], ...],
        _s('how far an arch may fall behind: "alpha:5" commits, "hppa:7d" days, "*:20"'),
    ] = ()
    snapshot_max_jobs: Annotated[
        int, _s("jobs of a recipe in flight at once for snapshots (0: no limit)", ge=0)
    ] = 0
    retry_failed: Annotated[
        int, _s("builds of a job that failed at a commit before snapshots stop retrying it", ge=1)
    ] = 1
    snapshot_schedule: Annotated[
        str, _s('"7 */4 * * *" or seconds: `kbo coordinator --beat` runs snapshots')
    ] = ""
    status_page: Annotated[
        str, _s("the HTML page the coordinator rewrites after each snapshot and result")
    ] = ""
    digest_hours: Annotated[
        int, _s("snapshots also mail the digest, at most this often (0: never)", ge=0)
    ] = 0
    timeout_history: Annotated[
        int,
        _s(
            "successful builds of a job key whose durations set its timeout: 3 x their p95,"
            " from 3 of them on (0: the recipe's timeout alone)",
            ge=0,
        ),
    ] = 10
    timeout_min_seconds: Annotated[
        int, _s("the shortest timeout the durations of earlier builds may set", ge=1)
    ] = 600
    web_listen: Annotated[str, _s("the address `kbo web` listens on", min_length=1)] = "127.0.0.1"
    web_port: Annotated[int, _s("the port `kbo web` listens on", ge=1, le=65535)] = 8080
    web_proxies: Annotated[
        tuple[str, ...],
        _s("addresses of the TLS-terminating proxies whose X-Forwarded-* `kbo web` trusts"),
    ] = ("127.0.0.1",)
    allowed_repositories: Annotated[
        tuple[str, ...],
        _s("sources `kbo web` accepts submissions of, as globs (empty: only `repository`)"),
    ] = ()
    read_access: Annotated[
        Literal["public", "token"], _s("who may read through `kbo web`: anyone, or a token")
    ] = "public"
    web_url: Annotated[
        str,
        _s(
            'where people reach `kbo web`: mails link to its log pages ("": log_url)',
            pattern="^$|^https?://",
        ),
    ] = ""
    server: Annotated[
        str,
        _s('`kbo web` for submit, status, retry, cancel ("": the broker)', pattern="^$|^https?://"),
    ] = ""
    token: Annotated[str, _s("the token `server` knows you by (never shown)")] = ""
    # Not settings: where the values came from, for messages and `kbo config --show`.
    source: str = "defaults"
    origins: dict[str, str] = msgspec.field(default_factory=dict)

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
    def status_recipe(self) -> str:
        """The recipe whose builds make an arch OK: the ladder's top rung, else
        ``default_recipe``."""
        return self.ladder[-1] if self.ladder else self.default_recipe

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def visibility_timeout(self) -> int:
        """Above the longest build, so the broker never re-delivers a build still running."""
        return self.max_build_seconds + 3600


NOT_SETTINGS = ("source", "origins")


def settings() -> list[msgspec.inspect.Field]:
    """The schema: every setting, with its type, constraints and description."""
    info = msgspec.inspect.type_info(Config)
    assert isinstance(info, msgspec.inspect.StructType)
    return [f for f in info.fields if f.name not in NOT_SETTINGS]


def _bare(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    return kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind


def describe(kind: msgspec.inspect.Type) -> str:
    """What a setting accepts, in words: "a whole number from 1 to 64"."""
    kind = _bare(kind)
    if isinstance(kind, msgspec.inspect.IntType):
        low, high = kind.ge, kind.le
        if low is not None and high is not None:
            return f"a whole number from {low} to {high}"
        return "a whole number" + (f" of at least {low}" if low is not None else "")
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(repr(v) for v in kind.values)
    if isinstance(kind, msgspec.inspect.VarTupleType):
        item = kind.item_type
        if isinstance(item, msgspec.inspect.StrType) and item.pattern:
            return f"a list of strings matching {item.pattern}"
        return "a list of strings"
    if isinstance(kind, msgspec.inspect.StrType):
        if kind.pattern:
            return f"a string matching {kind.pattern}"
        return "a non-empty string" if kind.min_length else "a string"
    return str(kind)


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the first config file found, apply ``KBO_*`` overrides, validate it all."""
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get("KBO_CONFIG")
    if chosen is not None and not is_utf8(chosen):
        where = "--config" if path is not None else "KBO_CONFIG"
        raise UserError(f"not UTF-8: {escaped(chosen)}", where)
    if chosen is not None and not chosen.strip():
        raise UserError(
            "the config file name is empty", "--config" if path is not None else "KBO_CONFIG"
        )
    values: dict[str, Any] = {}
    source = "defaults"
    candidates = [Path(chosen)] if chosen else [p.expanduser() for p in SEARCH_PATH]
    for candidate in candidates:
        if chosen or candidate.is_file() or _exists_as_other(candidate):
            values = _read_file(candidate)
            source = str(candidate)
            break
    known = {f.name: f for f in settings()}
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"unknown setting {name!r}{hint}", source)
    origins = dict.fromkeys(values, source)
    for name in known:
        variable = f"KBO_{name.upper()}"
        if variable in env:
            if not is_utf8(env[variable]):
                raise UserError(f"not UTF-8: {escaped(env[variable])}", variable)
            values[name] = env[variable]
            origins[name] = variable
            if isinstance(_bare(known[name].type), _LIST):  # "alpha, hppa" is a list
                values[name] = [v for v in re.split(r"[,\s]+", env[variable]) if v]
    try:
        config = msgspec.convert(
            values | {"source": source, "origins": origins}, Config, strict=False
        )
    except msgspec.ValidationError as e:
        failed = _failed_setting(str(e))
        if failed is None:
            raise UserError(f"invalid configuration: {e}", source) from None
        origin = origins.get(failed, source)
        given = env[origin] if origin in env else values.get(failed)  # as typed, not split
        value = "the value given" if failed in SECRETS else repr(given)
        raise UserError(
            f"{failed} must be {describe(known[failed].type)}, not {value}", origin
        ) from None
    _check_text(config)
    _check_urls(config)
    if len(set(config.ladder)) != len(config.ladder):
        raise UserError("ladder names a recipe twice", config.origins.get("ladder", source))
    return config


_LIST = msgspec.inspect.VarTupleType


def _failed_setting(message: str) -> str | None:
    match = re.search(r"at `\$\.(\w+)", message)
    return match[1] if match else None


def _check_text(config: Config) -> None:
    """What the schema cannot say: no NUL in any string (no file name or command holds one)."""
    for field in settings():
        value = getattr(config, field.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and "\0" in item:
                where = config.origins.get(field.name, config.source)
                raise UserError(f"{field.name} must not hold a NUL character", where)


# Query parameters kombu's Redis transport takes, with the values it accepts (None: any).
_BROKER_QUERY = {"ssl_cert_reqs": {"none", "optional", "required", "CERT_NONE",
                                   "CERT_OPTIONAL", "CERT_REQUIRED"},
                 "ssl_ca_certs": None, "ssl_certfile": None, "ssl_keyfile": None}  # fmt: skip


def _check_urls(config: Config) -> None:
    """What a pattern cannot say: the broker URL's scheme, host, port, database and query,
    each of which would otherwise fail deep inside the Redis client."""
    value = config.broker_url
    if not value:
        return
    where = config.origins.get("broker_url", config.source)

    def refuse(why: str) -> UserError:
        return UserError(
            f"broker_url {why} (redis://HOST[:PORT][/DB], a password before HOST)", where
        )

    if not re.fullmatch(r"rediss?://\S+", value):
        raise refuse("must start with redis:// or rediss:// and hold no spaces")
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        raise refuse("has a port that is not a number from 1 to 65535") from None
    if not url.hostname:
        raise refuse("names no host")
    if port == 0:
        raise refuse("has a port that is not a number from 1 to 65535")
    if not re.fullmatch(r"/?\d*", url.path):
        raise refuse("has a database that is not a number")
    for key, given in parse_qsl(url.query, keep_blank_values=True):
        allowed = _BROKER_QUERY.get(key, set())
        if allowed is not None and given not in allowed:
            raise refuse(f"has an unknown or bad option {key}={given}")


def shown(name: str, value: object) -> object:
    """A setting's value as ``kbo config --show`` prints it: secrets masked."""
    if name in SECRETS:
        return "**" if value else ""
    if isinstance(value, str):
        return mask_passwords(value)
    if isinstance(value, tuple):
        return tuple(mask_passwords(v) for v in value)
    return value


def _exists_as_other(path: Path) -> bool:
    """A default config path that is there but not a plain file (a directory, a link
    loop) is refused when read, rather than silently skipped."""
    try:
        return os.path.lexists(path)
    except OSError:
        return True


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_small_file(path))
    except FileNotFoundError:
        raise UserError("config file not found", str(path)) from None
    except IsADirectoryError:
        raise UserError("is a directory, not a config file", str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed config: {e}", str(path)) from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read config: {e}", str(path)) from None


def reference() -> str:
    """The README's table of settings, generated from the schema."""
    rows = ["| setting | accepts | default | what it is |", "|---|---|---|---|"]
    for field in settings():
        if field.name == "state_dir":
            default = "`/var/lib/kbo` as root, else `~/.local/state/kbo`"
        elif isinstance(field.default, tuple):
            default = f"`{list(field.default)!r}`"
        else:
            default = f"`{field.default!r}`".replace('"', "'")
        kind = field.type
        about = kind.extra_json_schema or {} if isinstance(kind, msgspec.inspect.Metadata) else {}
        accepts, what = (
            text.replace("|", "\\|") for text in (describe(kind), str(about.get("description", "")))
        )
        rows.append(f"| `{field.name}` | {accepts} | {default} | {what} |")
    return "\n".join(rows) + "\n"
