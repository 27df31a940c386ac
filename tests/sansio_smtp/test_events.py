"""Decisions validate when built; events are frozen value objects."""

from __future__ import annotations

import pytest

from sansio_smtp import (
    Accept,
    AuthCredentials,
    Greeting,
    LocalProtocolError,
    MessageData,
    Reject,
    Reply,
    Shutdown,
)


@pytest.mark.parametrize("code", [250, 354, 600, 399])
def test_reject_needs_4xx_or_5xx(code: int) -> None:
    """Reject with a code outside 400..599 is misuse."""
    with pytest.raises(LocalProtocolError):
        Reject(code=code, status="5.0.0", text="x")


def test_reject_validates_status_and_text() -> None:
    """Reject refuses a status of the wrong class and text with CR/LF injection."""
    with pytest.raises(LocalProtocolError):
        Reject(code=550, status="4.0.0", text="x")
    with pytest.raises(LocalProtocolError):
        Reject(code=550, status="5.0.0", text="x\r\n250 forged")
    assert Reject(code=550, status="5.1.1", text="a\nb").reply().lines == ("a", "b")


@pytest.mark.parametrize("make", [Accept, Greeting])
def test_text_decisions_refuse_control_bytes(make: type[Accept] | type[Greeting]) -> None:
    """Accept and Greeting text may not hide control bytes."""
    with pytest.raises(LocalProtocolError):
        make(text="a\rb")
    assert make(text="fine").text == "fine"


def test_shutdown_needs_a_reply() -> None:
    """Shutdown takes a Reply, nothing else."""
    with pytest.raises(LocalProtocolError):
        Shutdown(reply="421 bye")  # type: ignore[arg-type]
    assert Shutdown(reply=Reply(code=421)).reply.code == 421


def test_events_are_values() -> None:
    """Events compare by value and are immutable."""
    assert MessageData(data=b"x") == MessageData(data=b"x")
    with pytest.raises(AttributeError):
        MessageData(data=b"x").data = b"y"  # type: ignore[misc]
    creds = AuthCredentials(mechanism="PLAIN", authorization_id="", username="u", password="p")
    assert "'***'" in repr(creds)
