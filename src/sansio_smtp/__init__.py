"""sansio_smtp: a sans-IO SMTP/ESMTP engine (RFC 5321 and its extensions)."""

__all__: list[str] = []
