"""A real SMTP server on loopback that catches mail (aiosmtpd): mock mode's, the demo's and the tests'.

Chase reminders leave through the standard library's smtplib as they would with a real provider;
in mock mode SMTP_HOST/SMTP_PORT default to this server, so nothing leaves the machine. Every
message it accepts is kept in order in memory and, with `maildir`, as a file in a Maildir (the
admin app's Outbox lists what the demo's server caught from there: app_support/demo_services).

Tests steer it through `hook(stage, envelope)`: called at "rcpt" (envelope.rcpt_tos so far plus
the address being added) and "data" (the whole message, before it is kept), in a worker thread,
so it may block (a test holding a message while it kills the sender). It returns None to carry
on, or an SMTP reply such as "550 5.1.1 no such user" to refuse.

Like the rest of xero_core.fake, this imports nothing of the product.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import mailbox
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            return s.recv(3) == b"220"
    except OSError:
        return False


# A test's say in the conversation: (stage "rcpt" | "data", envelope, address | Caught) -> an SMTP
# reply to answer instead ("550 ..."), or None to accept.
MailHook = Callable[[str, Any, Any], "str | None"]


@dataclass
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID") or "")


class _Handler:
    def __init__(self, catcher: "MailCatcher") -> None:
        self.catcher = catcher

    # aiosmtpd's handler protocol: its server, session and envelope objects are untyped.
    async def _hook(self, stage: str, envelope: Any, extra: object = None) -> str | None:
        hook = self.catcher.hook
        if hook is None:
            return None
        return await asyncio.get_running_loop().run_in_executor(None, hook, stage, envelope, extra)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        refused = await self._hook("rcpt", envelope, address)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        caught = Caught(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw))
        self.catcher._keep(caught)
        refused = await self._hook("data", envelope, caught)
        return refused or "250 Message accepted for delivery"


class MailCatcher:
    """`with MailCatcher() as m:` ... `m.port`, `m.caught`. Loopback only."""

    def __init__(self, port: int | None = None, maildir: Path | str | None = None, host: str = "127.0.0.1",
                 hook: MailHook | None = None) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the mail catcher listens on loopback only")
        self.host, self.port = host, port or free_port(host)
        self.maildir = Path(maildir) if maildir else None
        self.hook = hook
        self.caught: list[Caught] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.received = threading.Condition(self._lock)

    def _keep(self, c: Caught) -> None:
        if self.maildir is not None:
            try:
                mailbox.Maildir(self.maildir, create=True).add(c.raw)
            except OSError as exc:
                log.warning("mail catcher: could not keep a message in %s: %s", self.maildir, exc)
        with self.received:
            self.caught.append(c)
            self.received.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` messages were caught (or the timeout passes); True if they were."""
        with self.received:
            return self.received.wait_for(lambda: len(self.caught) >= count, timeout)

    def start(self) -> "MailCatcher":
        from aiosmtpd.controller import Controller  # here: only a mail catcher that starts needs aiosmtpd

        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            try:
                self._controller.stop()
            except (AssertionError, RuntimeError):  # already stopped
                pass
            self._controller = None

    def __enter__(self) -> "MailCatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

