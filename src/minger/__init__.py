"""minger: a sans-IO codec for the Minger address-verification protocol."""

__all__: list[str] = []
