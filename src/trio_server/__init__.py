"""trio_server: the Trio layer over sansio_smtp, and the sansio-smtpd mail server.

The pieces an embedding program needs::

    config = load_config("smtpd.toml")
    server = SMTPServer(config)          # router=... to route non-local recipients
    server.prepare()
    bound = await nursery.start(server.serve)
    ...
    server.begin_shutdown()

``SMTPServer.handle(stream, peer)`` serves one session on any ``trio.abc.Stream``.
"""

from .config import Config, ConfigError, load_config
from .connection import Peer
from .routing import NoRoutes, Refusal, Route, RoutedRecipient, Router
from .server import SMTPServer

__all__ = [
    "Config",
    "ConfigError",
    "NoRoutes",
    "Peer",
    "Refusal",
    "Route",
    "RoutedRecipient",
    "Router",
    "SMTPServer",
    "load_config",
]
