"""One reminder over SMTP with the standard library's smtplib, in phases the outbox can record.

`send()` walks the SMTP conversation itself (EHLO, STARTTLS or TLS, AUTH, MAIL, RCPT, DATA) so it
can call `on_handed()` just before the message's final "." goes to the server: until then the
server cannot have accepted the message (it is safe to send it again after a crash); from then on
it may have (a crash leaves it "unconfirmed", never resent automatically). What the server's
answer means is an `Outcome`: sent, bounced (the address refused for good), failed (try again
later, or `retry=False`), or unconfirmed (the connection died after the hand-over).
"""
from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Callable

from ..settings import SmtpSettings

TIMEOUT = 30.0


@dataclass
class Outcome:
    state: str  # sent | failed | bounced | unconfirmed
    why: str | None = None
    reply: str | None = None
    retry: bool = True  # failed: worth another attempt later
    server_problem: bool = False  # failed before any recipient was tried: stop this run, every message would fail


def _reply(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return f"{code} {' '.join(text.split())}"[:300]


def _where(cfg: SmtpSettings) -> str:
    return f"{cfg.host}:{cfg.port}"


def _data_bytes(message: bytes) -> bytes:
    """RFC 5321 DATA body without its final ".": CRLF line ends, leading dots doubled."""
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", message)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _connect(cfg: SmtpSettings, host: str, port: int) -> smtplib.SMTP:
    if cfg.security == "tls":
        return smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=ssl.create_default_context())
    return smtplib.SMTP(host, port, timeout=TIMEOUT)


def send(cfg: SmtpSettings, password: str | None, sender: str, recipients: list[str], message: bytes,
         on_handed: Callable[[], None]) -> Outcome:
    where = _where(cfg)
    if not cfg.host or cfg.port is None:
        # read_smtp said so in `problem`, and chasing stops on it before sending; smtplib given no
        # host would not connect and fail later with "please run connect() first".
        return Outcome("failed", cfg.problem or "SMTP_HOST is not set.", retry=False, server_problem=True)
    try:
        smtp = _connect(cfg, cfg.host, cfg.port)
    except (OSError, smtplib.SMTPException) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Outcome("failed", f"could not reach the SMTP server {where}: {why}", server_problem=True)
    handed = False
    try:
        code, msg = smtp.ehlo()
        if code != 250:
            code, msg = smtp.helo()
            if code != 250:
                return Outcome("failed", f"the SMTP server {where} refused the greeting ({_reply(code, msg)})",
                               server_problem=True)
        if cfg.security == "starttls":
            if not smtp.has_extn("starttls"):
                return Outcome("failed", f"the SMTP server {where} does not offer STARTTLS: set SMTP_SECURITY=tls "
                               "with its TLS port (usually 465), or use the port that offers STARTTLS (usually 587).",
                               retry=False, server_problem=True)
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if cfg.username:
            try:
                smtp.login(cfg.username, password or "")
            except smtplib.SMTPAuthenticationError as exc:
                return Outcome("failed", f"the SMTP server {where} refused SMTP_USERNAME / SMTP_PASSWORD "
                               f"({_reply(exc.smtp_code, exc.smtp_error)}): check them.", retry=False,
                               server_problem=True)
            except smtplib.SMTPNotSupportedError:
                return Outcome("failed", f"the SMTP server {where} offers no sign-in here: unset SMTP_USERNAME, "
                               "or use SMTP_SECURITY=starttls or tls.", retry=False, server_problem=True)
        code, msg = smtp.mail(sender)
        if code != 250:
            return Outcome("failed", f"the SMTP server {where} refused CHASE_FROM {sender} ({_reply(code, msg)})",
                           retry=code < 500, server_problem=True)
        refused: list[tuple[str, int, bytes]] = []
        for rcpt in recipients:
            code, msg = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused.append((rcpt, code, msg))
        if refused:
            rcpt, code, msg = refused[0]
            smtp.rset()
            if code >= 500:
                return Outcome("bounced", f"the SMTP server refused {rcpt}: {_reply(code, msg)}", reply=_reply(code, msg),
                               retry=False)
            return Outcome("failed", f"the SMTP server deferred {rcpt}: {_reply(code, msg)}", reply=_reply(code, msg))
        code, msg = smtp.docmd("DATA")
        if code != 354:
            return Outcome("failed", f"the SMTP server refused DATA: {_reply(code, msg)}", reply=_reply(code, msg),
                           retry=code < 500)
        smtp.send(_data_bytes(message))
        on_handed()  # recorded before the last byte: from here the server may accept the message
        handed = True
        smtp.send(b".\r\n")
        code, msg = smtp.getreply()
        if code == 250:
            return Outcome("sent", None, reply=_reply(code, msg))
        if code >= 500:
            return Outcome("failed", f"the SMTP server rejected the message: {_reply(code, msg)}", reply=_reply(code, msg),
                           retry=False)
        return Outcome("failed", f"the SMTP server deferred the message: {_reply(code, msg)}", reply=_reply(code, msg))
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if handed:
            return Outcome("unconfirmed", f"the connection to {where} ended after the message was handed over and "
                           f"before the server answered ({why}): it was probably delivered, so it is not sent again "
                           "automatically.")
        return Outcome("failed", f"the SMTP conversation with {where} failed: {why}", server_problem=True)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
