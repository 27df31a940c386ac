"""Coverage-guided fuzz harnesses (atheris) for sansio_smtp and minger.

Each ``fuzz_<target>.py`` module exposes ``test_one_input(data: bytes) -> None`` and a
``main()`` that starts atheris. The modules import atheris only inside ``main()``, so the
corpus replay test (tests/test_fuzz_corpus.py) runs them on machines without atheris.
"""
