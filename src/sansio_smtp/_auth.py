# SASL for AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN (draft-murchison-
# sasl-login) mechanisms, server side. Only decoding lives here; the exchange
# itself (334 challenges, "*" cancels) is driven by _server.py.
"""Decoding of AUTH PLAIN and LOGIN responses (RFC 4954, RFC 4616)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from ._errors import ParameterError
from ._reply import Reply

__all__ = ["LOGIN_PASSWORD_CHALLENGE", "LOGIN_USERNAME_CHALLENGE", "decode_b64", "decode_plain"]

#: base64("Username:") and base64("Password:"), the customary LOGIN challenges.
LOGIN_USERNAME_CHALLENGE: Final = "VXNlcm5hbWU6"
LOGIN_PASSWORD_CHALLENGE: Final = "UGFzc3dvcmQ6"  # noqa: S105 (a prompt, not a secret)

_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_BAD_B64 = Reply(code=501, status="5.5.2", lines=("Cannot decode response",))


def decode_b64(text: str) -> str:
    """Decode one base64 SASL response to UTF-8 text.

    ``"="`` is the empty response (RFC 4954 §4).

    Raises:
        ParameterError: 501 5.5.2 when it is not strict base64 of UTF-8 text.
    """
    if text == "=":
        return ""
    if not _B64_RE.fullmatch(text):
        raise ParameterError("response is not base64", _BAD_B64)
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ParameterError("response is not base64 of UTF-8", _BAD_B64) from None


def decode_plain(text: str) -> tuple[str, str, str]:
    """Decode a PLAIN response into (authorization id, username, password).

    RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``.

    Raises:
        ParameterError: 501 5.5.2 when the response is malformed.
    """
    parts = decode_b64(text).split("\0")
    if len(parts) != 3 or not parts[1]:
        raise ParameterError("PLAIN response needs authzid NUL authcid NUL passwd", _BAD_B64)
    return parts[0], parts[1], parts[2]
