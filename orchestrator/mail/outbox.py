"""Send the outbox: every due mail, in the order it was queued, one sender per mail.

A mail is composed once, when it is first due, and the text is kept: a retry after an
SMTP outage or a crash sends the very same message. A sender claims a mail before it
sends it (``kbo digest`` sends beside the coordinator), and a claim expires, so a sender
that died lets go. When the SMTP server fails, the backoff is the server's: every mail
waits for its next try, and none overtakes another. A mail that cannot be composed, or
that no recipient can get, is skipped with the reason (``kbo outbox``); the next goes out.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import time
from email.utils import parseaddr

from kbo.config import Config
from kbo.errors import InfraError
from kbo.orchestrator.mail.compose import Composer
from kbo.orchestrator.state import OutboxMail, State

log = logging.getLogger("kbo.mail")
ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
# How long a sender holds a mail it claimed: longer than any one delivery (each SMTP
# exchange times out after 30 s).
CLAIM_SECONDS = 300.0
MAX_BACKOFF = 600.0


class Undeliverable(Exception):
    """No recipient of this mail can get it: trying again would change nothing."""


class Mailer:
    def __init__(self, config: Config, state: State) -> None:
        self.config = config
        self.state = state
        self.server = f"{config.smtp_host}:{config.smtp_port}"
        self.sender = f"{socket.gethostname()}:{os.getpid()}"

    def flush(self) -> int:
        """Send the due mails in order, each claimed first; stop at the first the SMTP
        server fails (it is tried again after the server's backoff) or that another
        sender holds (that one sends the rest). Return how many this call sent."""
        if not self.config.smtp_host:
            return 0
        failures, next_try = self.state.mail_server(self.server)
        if next_try > time.time():
            return 0
        sent = 0
        for mail in self.state.due_mail(time.time()):
            if not self.state.claim_mail(mail.id, self.sender, time.time() + CLAIM_SECONDS):
                break
            try:
                message = mail.message or self.state.freeze_mail(
                    mail.id,
                    Composer(self.config, self.state).compose(mail.kind, mail.data).as_string(),
                )
            except InfraError:  # the state database, not the row: tried again next time
                self.state.release_mail(mail.id, self.sender)
                raise
            except Exception as e:  # one bad row must not hold up every mail after it
                log.exception("mail %s cannot be composed: skipped", mail.id)
                self.state.mail_skipped(mail.id, f"cannot be composed: {type(e).__name__}: {e}")
                continue
            try:
                problems = self._send(message)
            except Undeliverable as e:
                log.warning("mail %s cannot be delivered: skipped: %s", mail.id, e)
                self.state.mail_skipped(mail.id, f"cannot be delivered: {e}")
                continue
            except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
                self._failed(mail, failures + 1, f"{type(e).__name__}: {e}")
                break
            if problems:
                log.warning("mail %s sent, but: %s", mail.id, problems)
            self.state.mail_sent(mail.id, problems)
            if failures:
                self.state.mail_server_ok(self.server)
                failures = 0
            sent += 1
        return sent

    def _failed(self, mail: OutboxMail, failures: int, error: str) -> None:
        delay = min(MAX_BACKOFF, 2.0 * 2**failures)
        log.warning(
            "mail %s not sent (%s failed %d times in a row, next try in %.0f s): %s",
            mail.id,
            self.server,
            failures,
            delay,
            error,
        )
        next_try = time.time() + delay
        self.state.mail_server_failed(self.server, failures, error, next_try)
        self.state.mail_failed(mail.id, mail.attempts + 1, error, next_try)

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
            raise Undeliverable("; ".join(problems) or "no recipient")
        config = self.config
        connection = (smtplib.SMTP_SSL if config.smtp_security == "tls" else smtplib.SMTP)(
            config.smtp_host, config.smtp_port, timeout=30
        )
        with connection as smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password)
            try:
                refused = smtp.send_message(message, config.mail_from, valid)
            except smtplib.SMTPRecipientsRefused as e:  # every one of them
                if all(code >= 500 for code, _ in e.recipients.values()):
                    raise Undeliverable(f"every recipient refused: {e.recipients}") from None
                raise
        problems += [f"refused {a}: {code} {reply!r}" for a, (code, reply) in refused.items()]
        return "; ".join(problems) or None
