"""Password hashes for AUTH PLAIN/LOGIN (RFC 4616, draft-murchison-sasl-login).

scrypt (RFC 7914) from hashlib: memory-hard, so a stolen configuration file is expensive
to brute-force on GPUs. The stored form describes itself, so the cost can be raised later
without breaking old entries::

    $scrypt$ln=15,r=8,p=1$<salt, base64>$<key, base64>

``ln`` is log2 of the CPU/memory cost N. The defaults (N=2**15, r=8, p=1: 32 MiB,
roughly 0.1 s) follow the OWASP password storage cheat sheet's scrypt minimum raised one
step. Verification compares in constant time (hmac.compare_digest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["PasswordHash", "hash_password", "parse_hash", "verify_password"]

DEFAULT_LOG_N = 15
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
# Refuse parameters that would let a configuration file ask for gigabytes per login.
MAX_LOG_N = 20
MAX_R = 32
MAX_P = 16
MAX_MEMORY = 256 * 1024 * 1024

_FORMAT = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,2}),p=(?P<p>[0-9]{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+={0,2})\$(?P<key>[A-Za-z0-9+/]+={0,2})"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordHash:
    """A parsed ``$scrypt$`` string."""

    log_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"$scrypt$ln={self.log_n},r={self.r},p={self.p}${salt}${key}"


def parse_hash(text: str) -> PasswordHash:
    """Parse a stored hash.

    Raises:
        ValueError: not a ``$scrypt$`` string, or parameters outside the safe range.
    """
    match = _FORMAT.fullmatch(text)
    if match is None:
        raise ValueError("not a $scrypt$ln=..,r=..,p=..$salt$key string")
    log_n, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
    if not (1 <= log_n <= MAX_LOG_N and 1 <= r <= MAX_R and 1 <= p <= MAX_P):
        raise ValueError(
            f"scrypt parameters out of range (ln<={MAX_LOG_N}, r<={MAX_R}, p<={MAX_P})"
        )
    try:
        salt = base64.b64decode(match["salt"], validate=True)
        key = base64.b64decode(match["key"], validate=True)
    except binascii.Error:
        raise ValueError("bad base64 in salt or key") from None
    if len(key) < 16:
        raise ValueError("key too short")
    return PasswordHash(log_n=log_n, r=r, p=p, salt=salt, key=key)


def _derive(password: str, *, salt: bytes, log_n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << log_n,
        r=r,
        p=p,
        maxmem=MAX_MEMORY,
        dklen=length,
    )


def hash_password(
    password: str, *, log_n: int | None = None, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """Hash ``password`` with a fresh random salt; returns the ``$scrypt$`` string.

    ``log_n`` defaults to :data:`DEFAULT_LOG_N` (read at call time).
    """
    log_n = DEFAULT_LOG_N if log_n is None else log_n
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt=salt, log_n=log_n, r=r, p=p, length=KEY_BYTES)
    return str(PasswordHash(log_n=log_n, r=r, p=p, salt=salt, key=key))


# Verifying against this when the user is unknown keeps the reply time the same, so
# timing does not reveal which user names exist.
_DUMMY = PasswordHash(
    log_n=DEFAULT_LOG_N, r=DEFAULT_R, p=DEFAULT_P, salt=b"\0" * SALT_BYTES, key=b"\0" * KEY_BYTES
)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: unknown user, always False).

    Takes about as long for an unknown user as for a known one. Blocking (scrypt):
    call it from a worker thread in async code.
    """
    try:
        parsed = parse_hash(stored) if stored is not None else _DUMMY
    except ValueError:
        parsed = _DUMMY
        stored = None
    key = _derive(
        password,
        salt=parsed.salt,
        log_n=parsed.log_n,
        r=parsed.r,
        p=parsed.p,
        length=len(parsed.key),
    )
    return hmac.compare_digest(key, parsed.key) and stored is not None
