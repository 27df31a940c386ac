"""Tests for minger._digest: the shared-secret digest and secret rules (-06 §2.1, §2.2)."""

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minger
from minger import MingerError

from ._strategies import mailboxes, secrets


@pytest.mark.parametrize(
    ("secret", "mailbox", "md5_hex", "digest"),
    [
        (
            "0123456789abcdef",
            "arvel@example.com",
            "03b13f589b6551b3b93560e365b6be6f",
            "A7E/WJtlUbO5NWDjZba+bw==",
        ),
        ("0123456789abcdef", "Arvel@example.com", None, "8idItqmMJ9wo5B4agtPBaw=="),
        (
            "ThisIsMySharedSecret",
            "bob@example.com",
            "b61d73024d9ffc78312ba368dd1224bb",
            "th1zAk2f/HgxK6No3RIkuw==",
        ),
    ],
)
def test_notes_vectors(secret: str, mailbox: str, md5_hex: str | None, digest: str) -> None:
    """compute_digest reproduces the worked examples of notes §6, case-sensitively."""
    assert minger.compute_digest(secret, mailbox) == digest
    if md5_hex is not None:
        assert base64.b64decode(digest).hex() == md5_hex


@settings(max_examples=200)
@given(secrets, mailboxes)
def test_digest_is_base64_md5_of_secret_colon_mailbox(secret: str, mailbox: str) -> None:
    """The digest is base64(MD5(secret ':' mailbox)), in the form the decoder accepts."""
    digest = minger.compute_digest(secret, mailbox)
    raw = hashlib.md5(f"{secret}:{mailbox}".encode(), usedforsecurity=False).digest()
    assert base64.b64decode(digest) == raw
    assert minger.Query(mailbox=mailbox, digest=digest).digest == digest
    assert minger.digest_matches(digest, secret=secret, mailbox=mailbox)


@settings(max_examples=200)
@given(st.binary(min_size=16, max_size=16))
def test_every_md5_value_has_an_accepted_digest(raw: bytes) -> None:
    """The digest grammar accepts the base64 of every 16-byte value."""
    digest = base64.b64encode(raw).decode()
    assert minger.Query(mailbox="a@example.test", digest=digest).digest == digest


def test_digest_matches_refuses_wrong_secret_and_mailbox() -> None:
    """A digest only matches its own secret and its own mailbox, byte for byte."""
    digest = minger.compute_digest("0123456789abcdef", "arvel@example.com")
    assert not minger.digest_matches(digest, secret="0123456789abcdeF", mailbox="arvel@example.com")
    assert not minger.digest_matches(digest, secret="0123456789abcdef", mailbox="Arvel@example.com")
    assert not minger.digest_matches("é" * 24, secret="0123456789abcdef", mailbox="a@example.com")


def test_digest_matches_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison goes through hmac.compare_digest (constant time)."""
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr("minger._digest.hmac.compare_digest", spy)
    assert minger.digest_matches(
        "A7E/WJtlUbO5NWDjZba+bw==", secret="0123456789abcdef", mailbox="arvel@example.com"
    )
    assert calls == [(b"A7E/WJtlUbO5NWDjZba+bw==", b"A7E/WJtlUbO5NWDjZba+bw==")]


@pytest.mark.parametrize("secret", ["x", "!" * 50, "0123456789abcdef", "~}|{"])
def test_valid_secrets(secret: str) -> None:
    """Secrets of 1 to 50 VCHAR characters are accepted unchanged."""
    assert minger.validate_secret(secret) == secret


@pytest.mark.parametrize(
    "secret", ["", "x" * 51, "with space", "tab\there", "nl\n", "caf\u00e9", "\x7f"]
)
def test_invalid_secrets(secret: str) -> None:
    """Empty, over 50 characters, or non-VCHAR secrets are refused (-06 §2.1)."""
    with pytest.raises(MingerError):
        minger.validate_secret(secret)
    with pytest.raises(MingerError):
        minger.compute_digest(secret, "a@example.test")


def test_secret_error_does_not_repeat_the_secret() -> None:
    """An invalid secret's error message never contains the secret itself."""
    with pytest.raises(MingerError) as info:
        minger.validate_secret("hunter2 is my password")
    assert "hunter2" not in str(info.value)


def test_non_ascii_mailbox_refused() -> None:
    """The digest is only defined over US-ASCII mailboxes."""
    with pytest.raises(MingerError):
        minger.compute_digest("0123456789abcdef", "é@example.test")
