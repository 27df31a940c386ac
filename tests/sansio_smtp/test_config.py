"""ServerConfig: defaults, validation, and the command line allowance."""

from __future__ import annotations

import pytest

from sansio_smtp import ServerConfig


def test_defaults_match_the_documented_sources() -> None:
    """Defaults are the cited values."""
    config = ServerConfig(hostname="mx.test")
    assert config.max_command_line == 512
    assert config.max_text_line == 1000
    assert config.max_recipients == 100
    assert config.max_message_size == 10_240_000
    assert config.max_bad_commands == 20
    assert config.max_envid_length == 100
    assert config.max_auth_line == 12288
    assert config.bare_newlines == "reject"
    assert not config.starttls
    assert config.auth_mechanisms == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hostname": ""},
        {"hostname": "a b"},
        {"hostname": "mx", "greeting_text": "hi\r\n"},
        {"hostname": "mx", "max_command_line": 10},
        {"hostname": "mx", "max_recipients": 0},
        {"hostname": "mx", "max_envid_length": 0},
        {"hostname": "mx", "max_message_size": 0},
        {"hostname": "mx", "bare_newlines": "fix"},
        {"hostname": "mx", "eightbitmime": False},
        {"hostname": "mx", "chunking": False},
        {"hostname": "mx", "auth_mechanisms": ("CRAM-MD5",)},
        {"hostname": "mx", "refuse_helo_containing": ("",)},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    """Inconsistent or out-of-range settings raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_command_line_limit_adds_extension_allowances() -> None:
    """Each enabled extension widens the command line limit by its RFC allowance."""
    bare = ServerConfig(
        hostname="mx",
        size=False,
        dsn=False,
        smtputf8=False,
        eightbitmime=False,
        binarymime=False,
        chunking=False,
    )
    assert bare.command_line_limit == 512
    full = ServerConfig(hostname="mx", auth_mechanisms=("PLAIN",))
    assert full.command_line_limit == 512 + 26 + 608 + 10 + 14 + 500
