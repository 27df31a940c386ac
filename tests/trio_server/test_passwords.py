"""scrypt password hashes: format, verification and the hash-password command."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_server import passwords
from trio_server.passwords import hash_password, parse_hash, verify_password

FAST = 4  # log2(N) for tests: the format and logic are the same, the cost is not


def test_round_trip() -> None:
    """A hash verifies its own password and no other."""
    stored = hash_password("correct horse", log_n=FAST)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_format_is_self_describing() -> None:
    """The string names the algorithm and its cost, so costs can change later."""
    stored = hash_password("x", log_n=FAST)
    assert stored.startswith(f"$scrypt$ln={FAST},r=8,p=1$")
    parsed = parse_hash(stored)
    assert (parsed.log_n, parsed.r, parsed.p) == (FAST, 8, 1)
    assert len(parsed.salt) == 16
    assert len(parsed.key) == 32
    assert str(parsed) == stored


def test_default_cost_is_memory_hard() -> None:
    """The default asks scrypt for N=2**15, r=8: 32 MiB per verification."""
    assert 128 * passwords.DEFAULT_R * (1 << passwords.DEFAULT_LOG_N) >= 32 * 1024 * 1024


def test_salts_differ() -> None:
    """Two hashes of one password differ (random salt)."""
    assert hash_password("same", log_n=FAST) != hash_password("same", log_n=FAST)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "$scrypt$ln=99,r=8,p=1$AAAA$" + "A" * 44,
        "$scrypt$ln=4,r=8,p=1$!!!!$" + "A" * 44,
        "$scrypt$ln=4,r=8,p=1$AAAA$AAAA",
        "$pbkdf2$ln=4,r=8,p=1$AAAA$" + "A" * 44,
    ],
)
def test_parse_refuses_garbage(text: str) -> None:
    """Malformed or too costly strings raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011
        parse_hash(text)


def test_unknown_user_and_bad_stored_hash_are_false() -> None:
    """No stored hash (unknown user) or a corrupt one never verifies."""
    assert not verify_password("anything", None)
    assert not verify_password("anything", "garbage")


@settings(max_examples=20, deadline=None)
@given(st.text(max_size=40))
def test_any_password_round_trips(password: str) -> None:
    """Any Unicode password verifies against its own hash."""
    assert verify_password(password, hash_password(password, log_n=FAST))


def test_command_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hash-password` with a pipe reads one line and prints a hash for it."""
    from trio_server.__main__ import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("hunter2\n"))
    monkeypatch.setattr(passwords, "DEFAULT_LOG_N", FAST)
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("hunter2", printed)


@pytest.mark.slow
def test_command_line_hash_password() -> None:
    """`python -m trio_server hash-password` prints a hash the config loader accepts."""
    result = subprocess.run(
        [sys.executable, "-m", "trio_server", "hash-password"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    stored = result.stdout.strip()
    parse_hash(stored)
    assert verify_password("s3cret", stored)


@pytest.mark.parametrize(
    ("argv", "stdin"), [(["hash-password", "x"], "pw\n"), (["hash-password"], "\n")]
)
def test_command_refuses_bad_use(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
) -> None:
    """An extra argument or an empty password: exit 2, one line on stderr, no hash."""
    from trio_server.__main__ import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
