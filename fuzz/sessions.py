"""Raw SMTP client sessions used as seeds: captured from smtplib, and written by hand.

The smtplib sessions are recorded against a fake socket that plays a permissive
server, so they are byte for byte what a real Python client sends. The hand-written ones
cover what smtplib never does: swaks-style pipelining, BDAT, every SMTP-smuggling
end-of-data variant, STARTTLS with pipelined plaintext, AUTH dialogues, over-long lines.
"""

from __future__ import annotations

import base64
import smtplib
from email.message import EmailMessage

__all__ = ["SMUGGLING_ENDINGS", "all_sessions", "handwritten_sessions", "smtplib_sessions"]

# Every end-of-data look-alike that is not CRLF.CRLF (CVE-2023-51764..6 and friends).
SMUGGLING_ENDINGS: tuple[bytes, ...] = (
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
)

_EHLO_REPLY = (
    b"250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n"
    b"250-AUTH PLAIN LOGIN\r\n250 BINARYMIME\r\n"
)


class _FakeServerSocket:
    """Just enough of a socket for smtplib: records what it sends, answers permissively."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self._pending = bytearray()
        self._replies = bytearray()
        self._in_data = False

    # smtplib's side -------------------------------------------------------------
    def sendall(self, data: bytes) -> None:
        self.sent += data
        self._pending += data
        self._answer()

    def makefile(self, mode: str) -> _FakeServerSocket:
        return self

    def readline(self, limit: int = -1) -> bytes:
        end = self._replies.find(b"\n")
        if end < 0:
            return b""
        line = bytes(self._replies[: end + 1])
        del self._replies[: end + 1]
        return line

    def close(self) -> None:
        """Nothing to release."""

    # the permissive server ---------------------------------------------------------
    def _answer(self) -> None:
        while True:
            if self._in_data:
                end = self._pending.find(b"\r\n.\r\n")
                if end < 0:
                    return
                del self._pending[: end + 5]
                self._in_data = False
                self._replies += b"250 2.0.0 Ok: queued\r\n"
                continue
            end = self._pending.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self._pending[:end]).upper()
            del self._pending[: end + 2]
            self._replies += self._reply_to(line)

    def _reply_to(self, line: bytes) -> bytes:
        if line.startswith(b"EHLO"):
            return _EHLO_REPLY
        if line.startswith(b"DATA"):
            self._in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if line.startswith(b"AUTH"):
            return b"235 2.7.0 Authentication successful\r\n"
        if line.startswith(b"QUIT"):
            return b"221 2.0.0 Bye\r\n"
        if line.startswith(b"VRFY"):
            return b"252 2.5.2 Cannot VRFY user\r\n"
        return b"250 2.0.0 Ok\r\n"


def _record(steps: str) -> bytes:
    """Runs one smtplib conversation against the fake server and returns its bytes."""
    client = smtplib.SMTP(local_hostname="client.example")
    fake = _FakeServerSocket()
    client.sock = fake  # type: ignore[assignment]
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "seed"
    msg.set_content("Hello Bob,\n.leading dot line\n..two dots\n\nbye\n")
    if steps == "plain":
        client.ehlo()
        client.send_message(msg)
    elif steps == "helo":
        client.helo()
        client.sendmail("alice@example.com", ["bob@example.org"], b"Subject: x\r\n\r\nbody\r\n")
    elif steps == "options":
        client.ehlo()
        client.sendmail(
            "alice@example.com",
            ["bob@example.org", "carol@example.net"],
            msg.as_bytes(),
            mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=QQ+2B1"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"],
        )
    elif steps == "utf8":
        client.ehlo()
        uni = EmailMessage()
        uni["From"] = "jörg@exämple.de"
        uni["To"] = "zoë@example.org"
        uni["Subject"] = "grüße"
        uni.set_content("ünïcödé body\n")
        client.send_message(uni, mail_options=["SMTPUTF8"])
    elif steps == "auth":
        client.ehlo()
        client.login("user", "pass")
        client.sendmail("", ["postmaster"], b"Subject: bounce\r\n\r\nnull sender\r\n")
    elif steps == "verify":
        client.ehlo()
        client.verify("bob")
        client.noop()
        client.rset()
    client.quit()
    return bytes(fake.sent)


def smtplib_sessions() -> dict[str, bytes]:
    """Returns named sessions exactly as smtplib writes them."""
    return {
        f"smtplib_{name}": _record(name)
        for name in ("plain", "helo", "options", "utf8", "auth", "verify")
    }


def _plain(user: str, password: str, authz: str = "") -> bytes:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode())


def handwritten_sessions() -> dict[str, bytes]:
    """Returns named sessions for paths smtplib never takes."""
    ehlo = b"EHLO client.example\r\n"
    env = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
    sessions: dict[str, bytes] = {
        # swaks --pipeline: the whole envelope and the content in one write.
        "swaks_pipelined": ehlo
        + b"MAIL FROM:<swaks@example.com> SIZE=120\r\nRCPT TO:<r1@example.org>\r\n"
        + b"RCPT TO:<r2@example.org> NOTIFY=NEVER\r\nDATA\r\n"
        + b"Date: Sat, 28 Nov 2026 09:00:00 +0000\r\nSubject: test\r\n\r\nThis is a test.\r\n"
        + b".\r\n"
        + b"QUIT\r\n",
        "bdat_two_chunks": ehlo
        + env
        + b"BDAT 12\r\nSubject: x\r\n"
        + b"BDAT 9 LAST\r\n\r\nbody\r\n.\r\n"
        + b"QUIT\r\n",
        "bdat_binarymime": ehlo
        + b"MAIL FROM:<a@example.com> BODY=BINARYMIME SIZE=3\r\nRCPT TO:<b@example.org>\r\n"
        + b"BDAT 3 LAST\r\n\x00\xff\r"
        + b"QUIT\r\n",
        "bdat_zero_last": ehlo + env + b"BDAT 0 LAST\r\nQUIT\r\n",
        "starttls_injection": ehlo
        + b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<x@y.z>\r\n",
        "auth_plain_initial": ehlo + b"AUTH PLAIN " + _plain("user", "pass") + b"\r\nQUIT\r\n",
        "auth_plain_challenge": ehlo
        + b"AUTH PLAIN\r\n"
        + _plain("user", "pass", "admin")
        + b"\r\nQUIT\r\n",
        "auth_login": ehlo
        + b"AUTH LOGIN\r\n"
        + base64.b64encode(b"user")
        + b"\r\n"
        + base64.b64encode(b"pass")
        + b"\r\nQUIT\r\n",
        "auth_cancel": ehlo + b"AUTH LOGIN\r\n*\r\nAUTH PLAIN\r\n=\r\nQUIT\r\n",
        "dsn_params": ehlo
        + b"MAIL FROM:<a@example.com> RET=FULL ENVID=abc+2Bdef AUTH=<> BODY=8BITMIME\r\n"
        + b"RCPT TO:<b@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40example.org\r\n"
        + b"RCPT TO:<c@example.org> ORCPT=utf-8;c\\x{E9}@example.org\r\n"
        + b"QUIT\r\n",
        "odd_paths": ehlo
        + b"MAIL FROM:<>\r\n"
        + b'RCPT TO:<"john doe"@example.org>\r\n'
        + b"RCPT TO:<@relay.example,@r2.example:c@example.org>\r\n"
        + b"RCPT TO:<postmaster>\r\nRCPT TO:<d@[127.0.0.1]>\r\nRCPT TO:<e@[IPv6:::1]>\r\n"
        + b"RCPT TO:<bill%ms.test@d.test>\r\nRCPT TO:<site!user@d.test>\r\n"
        + b"QUIT\r\n",
        "errors": b"FOO\r\nMAIL FROM:<a@b.c>\r\nEHLO\r\nHELO\r\nRCPT TO:<x@y.z>\r\nDATA\r\n"
        + b"EXPN list\r\nVRFY\r\nHELP\r\nNOOP x\r\nBDAT x\r\nBDAT 99999999999999999999\r\n"
        + b"MAIL FROM:<a@b.c> SIZE=99999999999999999999999\r\nQUIT\r\n",
        "long_command": ehlo + b"MAIL FROM:<" + b"a" * 600 + b"@example.com>\r\nQUIT\r\n",
        "long_data_line": ehlo + env + b"DATA\r\n" + b"x" * 1200 + b"\r\n.\r\nQUIT\r\n",
        "bare_lf_commands": b"EHLO c\nMAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nQUIT\n",
        "helo_then_ehlo_rset": b"HELO c\r\nMAIL FROM:<a@b.c>\r\nEHLO c\r\nRSET\r\nQUIT\r\n",
        "empty_lines": b"\r\n\r\n \r\nEHLO c\r\n\r\nQUIT\r\n",
        "eof_mid_data": ehlo + env + b"DATA\r\npartial line without end",
    }
    for i, ending in enumerate(SMUGGLING_ENDINGS):
        sessions[f"smuggle_{i}"] = (
            ehlo
            + env
            + b"DATA\r\nSubject: smuggle\r\n\r\nfirst"
            + ending
            + b"MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.org>\r\n"
            + b"DATA\r\nsmuggled body\r\n.\r\n.\r\nQUIT\r\n"
        )
    return sessions


def all_sessions() -> dict[str, bytes]:
    """Returns every seed session, by name."""
    return {**smtplib_sessions(), **handwritten_sessions()}
