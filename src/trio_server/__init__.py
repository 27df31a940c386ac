"""trio_server: the Trio layer over sansio_smtp, and the sansio-smtpd mail server."""

__all__: list[str] = []
