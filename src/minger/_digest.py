"""The Minger shared-secret digest (draft-hathcock-minger-06 §2.1, §2.2, §5).

    digest-text = shared-secret ":" mailbox ; input text for digest
    shared-secret = 1*50(VCHAR)       ; password credential

The digest is ``base64(MD5(digest-text))``: the raw 16-byte MD5 value (RFC 1321), encoded
in standard padded base64 (RFC 4648 §4), over the mailbox exactly as it appears in the
query. There is no nonce or timestamp, so a captured query can be replayed for the same
mailbox until the secret changes (research notes §2, §4): deploy on trusted networks.
"""

import base64
import hashlib
import hmac

from ._errors import MingerError
from ._grammar import MAX_SECRET, is_vchar_text

__all__ = ["compute_digest", "digest_matches", "validate_secret"]


def validate_secret(secret: str) -> str:
    """Check a shared secret against -06 §2.1 (1 to 50 VCHAR characters) and return it.

    This is the wire rule only. The draft's §5 asks for at least 128 bits, and MDaemon for
    at least 16 characters; :func:`trio_server.minger_service.parse_minger_table` enforces
    that for our own server, while a client must still be able to talk to older peers.

    Args:
        secret: the shared secret.

    Returns:
        ``secret`` unchanged.

    Raises:
        MingerError: the secret is empty, longer than 50 characters, or holds a character
            that is not visible US-ASCII (spaces and control characters included). The
            message never repeats the secret.
    """
    if not secret:
        raise MingerError("the shared secret is empty (-06 §2.1: 1*50 VCHAR)")
    if len(secret) > MAX_SECRET:
        raise MingerError(
            f"the shared secret has {len(secret)} characters; at most {MAX_SECRET} allowed"
            " (-06 §2.1)"
        )
    if not is_vchar_text(secret):
        raise MingerError(
            "the shared secret may hold only visible US-ASCII characters, no spaces"
            " (-06 §2.1 VCHAR)"
        )
    return secret


def compute_digest(secret: str, mailbox: str) -> str:
    """Compute the query digest for ``mailbox`` under ``secret`` (-06 §2.2).

    Args:
        secret: the shared secret; validated with :func:`validate_secret`.
        mailbox: the mailbox exactly as it will be sent (case matters).

    Returns:
        The 24-character base64 digest, e.g. ``A7E/WJtlUbO5NWDjZba+bw==`` for secret
        ``0123456789abcdef`` and mailbox ``arvel@example.com``.

    Raises:
        MingerError: the secret is invalid, or the mailbox is not US-ASCII.
    """
    validate_secret(secret)
    if not mailbox.isascii():
        raise MingerError("the mailbox must be US-ASCII (-06 §2.1 refers to RFC 2821)")
    # MD5 is what the draft mandates; it serves as a keyed hash here, not for security
    # against collisions, and cannot be changed without breaking every peer.
    md5 = hashlib.md5(f"{secret}:{mailbox}".encode("ascii"), usedforsecurity=False)
    return base64.b64encode(md5.digest()).decode("ascii")


def digest_matches(digest: str, *, secret: str, mailbox: str) -> bool:
    """Tell, in constant time, whether ``digest`` is the right digest for ``mailbox``.

    Args:
        digest: the digest received in a query (without ``d=``).
        secret: the shared secret.
        mailbox: the mailbox exactly as received.

    Returns:
        True only when ``digest`` equals :func:`compute_digest` ``(secret, mailbox)``,
        compared with :func:`hmac.compare_digest` so timing does not leak how many leading
        characters were right.

    Raises:
        MingerError: the secret or mailbox is invalid (see :func:`compute_digest`).
    """
    expected = compute_digest(secret, mailbox).encode("ascii")
    # A digest from a parsed query is ASCII; anything else can never match.
    if not digest.isascii():
        return False
    return hmac.compare_digest(expected, digest.encode("ascii"))
