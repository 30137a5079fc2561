"""Send the outbox: every due report, each retried with backoff until it goes out.

A report is composed once, when it is first due, and the text is kept: a retry after an
SMTP outage or a crash sends the very same message.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from email.utils import parseaddr

from kbo.config import Config
from kbo.orchestrator.mail.compose import Composer
from kbo.orchestrator.state import State

log = logging.getLogger("kbo.mail")
ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


class Mailer:
    def __init__(self, config: Config, state: State) -> None:
        self.config = config
        self.state = state

    def flush(self) -> int:
        """Send every due report; a failure is recorded and retried with backoff."""
        if not self.config.smtp_host:
            return 0
        sent = 0
        for mail in self.state.due_mail(time.time()):
            message = mail.message or self.state.freeze_mail(
                mail.id, Composer(self.config, self.state).compose(mail.kind, mail.data).as_string()
            )
            try:
                problems = self._send(message)
            except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
                self._failed(mail.id, mail.attempts + 1, f"{type(e).__name__}: {e}")
                continue
            if problems:
                log.warning("mail %s sent, but: %s", mail.id, problems)
            self.state.mail_sent(mail.id, problems)
            sent += 1
        return sent

    def _failed(self, mail_id: int, attempts: int, error: str) -> None:
        delay = min(600.0, 2.0 * 2**attempts)
        log.warning(
            "mail %s not sent (try %d, next in %.0f s): %s", mail_id, attempts, delay, error
        )
        self.state.mail_failed(mail_id, attempts, error, time.time() + delay)

    def _send(self, text: str) -> str | None:
        """Deliver to every valid recipient; return what went wrong with the others."""
        from email import message_from_string, policy

        message = message_from_string(text, policy=policy.SMTP)
        wanted = [
            a.strip() for a in str(message.get("X-Kbo-Recipients", "")).split(",") if a.strip()
        ]
        del message["X-Kbo-Recipients"]
        valid = [a for a in wanted if ADDRESS.fullmatch(parseaddr(a)[1] or "")]
        problems = [f"invalid recipient {a!r}" for a in wanted if a not in valid]
        if not valid:
            raise smtplib.SMTPRecipientsRefused({a: (0, b"invalid") for a in wanted})
        config = self.config
        connection = (smtplib.SMTP_SSL if config.smtp_security == "tls" else smtplib.SMTP)(
            config.smtp_host, config.smtp_port, timeout=30
        )
        with connection as smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password)
            refused = smtp.send_message(message, config.mail_from, valid)
        problems += [f"refused {a}: {code} {reply!r}" for a, (code, reply) in refused.items()]
        return "; ".join(problems) or None
