"""Entry point for ``sansio-smtpd`` and ``python -m trio_server``.

Usage::

    sansio-smtpd --config FILE            run the server until SIGTERM/SIGINT
    sansio-smtpd --config FILE --check    validate FILE, exit 0 (or 2 with the reason)
    sansio-smtpd hash-password            read a password on stdin, print its hash

Exit status: 0 after a clean run or check, 2 for a configuration or usage error (one
line on standard error, never a traceback), 1 when the server cannot start (for example
the port is taken).
"""

from __future__ import annotations

import argparse
import getpass
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from .config import Config, ConfigError, load_config
from .log import logger, setup_logging
from .minger_service import MingerSettings, make_directory, serve_minger
from .outbound import Forwarding
from .passwords import hash_password
from .server import SMTPServer, build_engine_config, build_ssl_context
from .spool import SpoolError

__all__ = ["main"]

PROG = "sansio-smtpd"


def _hash_password_command() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print(f"{PROG}: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(f"{PROG}: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _check(config: Config) -> None:
    """Build everything the server would build, so --check finds what start-up would."""
    try:
        build_engine_config(config)
    except ValueError as error:
        raise ConfigError(config.path, "server", str(error)) from None
    try:
        build_ssl_context(config)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            config.path, "tls", f"cannot load the certificate and key ({error})"
        ) from None


async def _run(server: SMTPServer, forwarding: Forwarding | None) -> None:
    config = server.config
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            # Background services run until shutdown; SMTP sessions get their grace time.
            services = trio.CancelScope()
            minger_scope = trio.CancelScope()  # a CancelScope serves one `with` block only
            if forwarding is not None:
                await nursery.start(_in_scope, services, forwarding.agent.run)
            if isinstance(config.minger, MingerSettings):
                directory = make_directory(
                    is_local_domain=config.local.is_local_domain,
                    mailbox_for=config.local.mailbox_for,
                    disabled_mailboxes=config.minger.disabled_mailboxes,
                )
                serve = partial(serve_minger, config.minger, directory)
                await nursery.start(_in_scope, minger_scope, serve)
            async for signum in signals:
                logger.info(
                    "%s: shutting down (at most %gs)",
                    signal.Signals(signum).name,
                    config.server.shutdown_timeout,
                )
                server.begin_shutdown()
                services.cancel()
                minger_scope.cancel()
                break
    logger.info("stopped")


async def _in_scope(
    scope: trio.CancelScope,
    service: Callable[..., Awaitable[object]],
    *,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``service`` (a nursery.start-style function) inside ``scope``."""
    with scope:
        await service(task_status=task_status)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hash-password"]:
        if len(args) > 1:
            print(
                f"usage: {PROG} hash-password  (the password is read from stdin)", file=sys.stderr
            )
            return 2
        return _hash_password_command()
    parser = argparse.ArgumentParser(prog=PROG, description="A small SMTP server on Trio.")
    parser.add_argument("--config", required=True, metavar="FILE", help="the TOML file")
    parser.add_argument("--check", action="store_true", help="validate FILE and exit")
    options = parser.parse_args(args)  # exits 2 with a usage line on bad arguments
    try:
        config = load_config(options.config)
        _check(config)
    except ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    if options.check:
        print(f"{PROG}: {config.path}: ok")
        return 0
    setup_logging()
    try:
        # Forwarding ([[forward]] / [relay]) brings its durable queue and delivery loop.
        # The queue also carries delivery reports, so it exists with or without routes.
        forwarding = Forwarding.from_config(config)
        server = SMTPServer(config, router=forwarding.router if forwarding else None)
        server.prepare()
        trio.run(_run, server, forwarding)
    except SpoolError as error:
        logger.error("cannot start: %s", error)
        return 1
    except (OSError, BaseExceptionGroup) as error:
        reason = _start_error(error)
        if reason is None:
            raise
        logger.error("cannot start: %s", reason)
        return 1
    return 0


def _start_error(error: BaseException) -> OSError | None:
    """The OSError (port taken, folder not writable) behind a start-up failure, if any."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _start_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
