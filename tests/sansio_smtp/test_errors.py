"""The ProtocolError hierarchy and the replies its members carry."""

from __future__ import annotations

import pytest

from sansio_smtp import (
    LocalProtocolError,
    ParameterError,
    ProtocolError,
    RemoteProtocolError,
    Reply,
)


def test_base_class_is_abstract() -> None:
    """ProtocolError itself cannot be raised; its subclasses can."""
    with pytest.raises(TypeError):
        ProtocolError("x")
    assert isinstance(LocalProtocolError("x"), ProtocolError)


def test_default_replies() -> None:
    """Each kind maps to a sensible reply when none is given."""
    assert LocalProtocolError("x").reply.code == 451
    assert RemoteProtocolError("x").reply == Reply(
        code=500, status="5.5.2", lines=("Syntax error",)
    )
    assert ParameterError("x").reply.status == "5.5.4"
    assert issubclass(ParameterError, RemoteProtocolError)


def test_explicit_reply_and_message() -> None:
    """The reply given is kept, and the message is the exception text."""
    reply = Reply(code=553, status="5.1.3", lines=("bad",))
    error = ParameterError("why", reply)
    assert error.reply is reply
    assert str(error) == "why"
