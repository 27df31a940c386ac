"""One regression test per bug the fuzzers found (ids from /work/plan/fuzz-findings.md).

A finding whose fix has not landed is marked ``xfail(strict=True)``: the suite stays
green, and the day the fix lands the XPASS turns red so the marker gets removed.
"""

from __future__ import annotations

import pytest

from sansio_smtp._errors import ParameterError
from sansio_smtp._params import (
    format_mail_params,
    format_rcpt_params,
    parse_mail_params,
    parse_rcpt_params,
    utf8_addr_xtext_decode,
    utf8_addr_xtext_encode,
)


@pytest.mark.xfail(strict=True, reason="F1 open: UTF-8 grammar classes admit lone surrogates")
def test_f1_unitext_refuses_lone_surrogates() -> None:
    """Whatever utf8_addr_xtext_decode accepts survives encode then decode unchanged."""
    try:
        decoded = utf8_addr_xtext_decode("52\udcab", unitext=True)
    except ValueError:
        return
    assert utf8_addr_xtext_decode(utf8_addr_xtext_encode(decoded)) == decoded


@pytest.mark.xfail(strict=True, reason="F2 open: xtext re-encoding outgrows the ORCPT limit")
def test_f2_formatted_orcpt_fits_the_limit() -> None:
    """An ORCPT the parser accepted is formatted into one the same parser accepts."""
    params = parse_rcpt_params(" ORCPT=UTF-8;jömp", dsn=True, utf8=True, max_orcpt_length=10)
    formatted = " " + format_rcpt_params(params)
    assert parse_rcpt_params(formatted, dsn=True, utf8=True, max_orcpt_length=10) == params


@pytest.mark.xfail(strict=True, reason="F1 open: AUTH= admits a lone surrogate")
def test_f1_mail_params_with_surrogate_format_or_refuse() -> None:
    """A MAIL parameter list that parses also formats (F1's second symptom)."""
    try:
        params = parse_mail_params(" SMTPUTF8 AUTH=X-\udc95@leO", smtputf8=True, auth=True)
    except ParameterError:
        return
    assert format_mail_params(params)
