# The error hierarchy, in h11's shape: one ProtocolError base carrying the SMTP
# reply the error maps to, and two concrete kinds saying whose fault it was.
"""ProtocolError and its subclasses; each carries the SMTP reply it maps to."""

from __future__ import annotations

from ._reply import Reply

__all__ = ["LocalProtocolError", "ParameterError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of every error the engine raises about the SMTP conversation.

    Do not raise ProtocolError itself; raise a subclass. Each error carries
    ``reply``, the SMTP reply that answers it (for example the reply a server sends
    before closing).

    Args:
        msg: A human-readable description (for logs; never sent as is).
        reply: The reply this error maps to; each subclass has a default.

    Attributes:
        reply: The Reply to send for this error.
    """

    default_reply = Reply(code=451, status="4.3.0", lines=("Local error in processing",))

    def __init__(self, msg: str, reply: Reply | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        super().__init__(msg)
        self.reply: Reply = reply if reply is not None else self.default_reply


class LocalProtocolError(ProtocolError):
    """The application misused the engine (e.g. Accept with nothing pending).

    The connection is left in the ERROR state.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent something the engine cannot continue from."""

    default_reply = Reply(code=500, status="5.5.2", lines=("Syntax error",))


class ParameterError(RemoteProtocolError):
    """A path or MAIL/RCPT parameter failed to parse.

    ``reply`` is the precise answer (501 5.5.4, 555 5.5.4, 553 5.1.3, ...). The
    engine catches it, sends the reply and stays in the state it was in.
    """

    default_reply = Reply(code=501, status="5.5.4", lines=("Syntax error in parameters",))
