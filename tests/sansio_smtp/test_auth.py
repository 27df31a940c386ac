"""AUTH PLAIN and LOGIN: decoding helpers and the exchange through ServerConnection."""

from __future__ import annotations

import base64

import pytest

from sansio_smtp import (
    Accept,
    AuthCredentials,
    Event,
    ParameterError,
    Reject,
    State,
    decode_b64,
    decode_plain,
)

from .helpers import Session, config

AUTH_CFG = config(auth_mechanisms=("PLAIN", "LOGIN"), auth_require_tls=False)


def b64(data: bytes) -> str:
    """Base64 text of data."""
    return base64.b64encode(data).decode()


def check(event: Event) -> Accept | Reject:
    """Accept user/secret, reject anything else."""
    if isinstance(event, AuthCredentials) and event.password != "secret":
        return Reject(code=535, status="5.7.8", text="Authentication credentials invalid")
    return Accept()


def test_decode_helpers() -> None:
    """decode_b64 and decode_plain accept strict base64 and the PLAIN layout only."""
    assert decode_b64("=") == ""
    assert decode_b64(b64("héllo".encode())) == "héllo"
    assert decode_plain(b64(b"az\0user\0pw")) == ("az", "user", "pw")
    for bad in ("abc", "a b=", "////", b64(b"\xff\xfe")):
        with pytest.raises(ParameterError) as info:
            decode_b64(bad)
        assert info.value.reply.code == 501
    for bad_plain in (b64(b"user\0pw"), b64(b"\0\0pw"), b64(b"a\0b\0c\0d")):
        with pytest.raises(ParameterError):
            decode_plain(bad_plain)


def test_plain_with_initial_response() -> None:
    """AUTH PLAIN with an initial response yields AuthCredentials; Accept -> 235 2.7.0."""
    session = Session.start(AUTH_CFG, check)
    token = b64(b"\0user\0secret")
    events = session.feed(f"EHLO c\r\nAUTH PLAIN {token}\r\n".encode())
    assert (
        AuthCredentials(mechanism="PLAIN", authorization_id="", username="user", password="secret")
        in events
    )
    assert session.codes()[-1] == "235 2.7.0 Authentication successful"
    assert session.conn.authenticated_as == "user"
    session.feed(b"AUTH PLAIN\r\n")
    assert session.codes()[-1] == "503 5.5.1 Already authenticated"


def test_plain_with_challenge_and_failure() -> None:
    """AUTH PLAIN without a response gets "334 "; bad credentials get 535 5.7.8."""
    session = Session.start(AUTH_CFG, check)
    session.feed(b"EHLO c\r\nAUTH plain\r\n")
    assert bytes(session.output).endswith(b"334 \r\n")
    assert session.state() is State.AUTH
    token = b64(b"\0user\0wrong")
    session.feed(f"{token}\r\n".encode())
    assert session.codes()[-1] == "535 5.7.8 Authentication credentials invalid"
    assert session.conn.authenticated_as is None
    assert session.state() is State.READY


def test_login_exchange() -> None:
    """AUTH LOGIN asks for username then password with 334 challenges."""
    session = Session.start(AUTH_CFG, check)
    session.feed(b"EHLO c\r\nAUTH LOGIN\r\n")
    session.feed(f"{b64(b'user')}\r\n".encode())
    events = session.feed(f"{b64(b'secret')}\r\n".encode())
    assert session.replies()[-3:] == [
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0 Authentication successful",
    ]
    assert events[0] == AuthCredentials(
        mechanism="LOGIN", authorization_id="", username="user", password="secret"
    )


def test_login_with_initial_username() -> None:
    """AUTH LOGIN <username> skips the username challenge."""
    session = Session.start(AUTH_CFG, check)
    session.feed(f"EHLO c\r\nAUTH LOGIN {b64(b'user')}\r\n{b64(b'secret')}\r\n".encode())
    assert session.codes()[-2:] == ["334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful"]


@pytest.mark.parametrize(
    ("lines", "reply"),
    [
        (b"AUTH PLAIN\r\n*\r\n", "501 5.7.0 Authentication cancelled"),
        (b"AUTH LOGIN\r\n*\r\n", "501 5.7.0 Authentication cancelled"),
        (b"AUTH PLAIN !!!!\r\n", "501 5.5.2 Cannot decode response"),
        (b"AUTH LOGIN\r\n????\r\n", "501 5.5.2 Cannot decode response"),
        (b"AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication mechanism"),
        (
            b"AUTH PLAIN\r\n" + b"A" * 13000 + b"\r\n",
            "500 5.5.6 Authentication exchange line is too long",
        ),
    ],
)
def test_auth_failures(lines: bytes, reply: str) -> None:
    """Cancel, bad base64, unknown mechanism and over-long lines end the exchange."""
    session = Session.start(AUTH_CFG, check)
    session.feed(b"EHLO c\r\n" + lines + b"NOOP\r\n")
    assert session.codes()[-2:] == [reply, "250 2.0.0 Ok"]
    assert session.state() is State.READY


def test_auth_needs_tls_when_required() -> None:
    """With auth_require_tls, AUTH before TLS gets 538 5.7.11."""
    session = Session.start(config(auth_mechanisms=("PLAIN",)))
    session.feed(b"EHLO c\r\nAUTH PLAIN\r\n")
    assert session.codes()[-1] == (
        "538 5.7.11 Encryption required for requested authentication mechanism"
    )


def test_auth_sequencing() -> None:
    """AUTH needs EHLO and is refused during a transaction (503 5.5.1)."""
    session = Session.start(AUTH_CFG, check)
    session.feed(b"HELO c\r\nAUTH PLAIN\r\n")
    assert session.codes()[-1] == "503 Send EHLO first"
    session.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN\r\n")
    assert session.codes()[-1] == "503 5.5.1 Not allowed during a transaction"
