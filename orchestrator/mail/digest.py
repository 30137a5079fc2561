"""The digest: one mail listing the tracked arches not OK at HEAD, queued in the outbox.

``kbo digest`` sends one on demand; snapshot runs queue one at most every ``digest_hours``.
Arches over their ``max_staleness`` are flagged; flavours the hosts kept from building
(infra-error, dep-wait, lost) are listed with their error, for the admins who read it, and
so are cancelled flavours and arches that no live worker serves.
"""

from __future__ import annotations

import time

from kbo.config import Config
from kbo.orchestrator.snapshot import lateness, parse_limits, plural
from kbo.orchestrator.standings import Standings
from kbo.orchestrator.state import State, StateReader


def compose(config: Config, found: Standings, now: float) -> tuple[str, str] | None:
    """Subject and body, or None when every tracked arch is OK."""
    behind = [a for a in found.arches if a.state != "OK"]
    if not behind:
        return None
    limits = parse_limits(config.max_staleness, config.source)
    lines = [
        f"{len(behind)} of {len(found.arches)} tracked arches are not built at HEAD "
        f"({config.branch} at {found.head[:12]}, recipe {found.recipe}):",
        "",
    ]
    over = 0
    for a in behind:
        good = f"last good {a.last_good.sha[:7]}" if a.last_good else "never built"
        late = lateness(a, found.history, limits, now)
        flag = late.over_limit
        over += flag is not None
        lines.append(
            f"  {a.name:10} {a.state:8} {good}, "
            f"{late.behind} {plural(late.behind, 'commit')} behind"
            + (f", for {int(late.age_seconds // 86400)} days" if a.stale_since else "")
            + (f", failing since {a.failing_commit[:7]}" if a.failing_commit else "")
            + (f"\n  {'':10} first error: {a.first_error}" if a.first_error else "")
            + (f"\n  {'':10} OVER LIMIT: {flag}" if flag else "")
            + "".join(
                f"\n  {'':10} {f.name}: {p.state}: {p.error or '(no error given)'}"
                for f in a.flavours
                if (p := f.host_problem) is not None
            )
            + "".join(
                f"\n  {'':10} {f.name}: cancelled: {f.cancelled}" for f in a.flavours if f.cancelled
            )
            + (
                f"\n  {'':10} NO WORKER: no live worker serves {a.name}"
                if a.name in found.unserved
                else ""
            )
        )
    flagged = f", {over} over max_staleness" if over else ""
    subject = f"[kbo] digest: {len(behind)} arches not built at {found.head[:7]}{flagged}"
    return subject, "\n".join(lines) + "\n"


def queue(config: Config, state: State, subject: str, body: str, now: float) -> int:
    """The digest, due now, in the outbox; its id."""
    data = {"subject": subject, "body": body, "recipients": list(config.mail_to)}
    with state.transaction() as tx:
        return tx.queue_mail("digest", data, now, due=now)


def due(config: Config, state: StateReader, now: float | None = None) -> bool:
    """Whether a snapshot should queue a digest now: configured, and none in the last
    ``digest_hours``."""
    if not config.digest_hours or not config.smtp_host:
        return False
    now = time.time() if now is None else now
    last = state.last_digest_at()
    return last is None or now - last >= config.digest_hours * 3600
