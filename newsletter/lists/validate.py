"""Validating a list: every problem of every row, with its line, before a send trips over one.

Invalid or duplicate addresses, unknown statuses, bad dates and rows of the
wrong width are reported and the walk goes on; only a file that cannot be
parsed at all (not UTF-8, an unclosed quote) stops it, as a NewsletterError.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import email_validator
from email_validator import EmailNotValidError, validate_email

from ..errors import NewsletterError
from .addresses import key_or_problem
from .csvfile import read_list
from .names import require_list
from .read import Columns, Subscriber, subscriber_of
from .statuses import STATUSES, SUPPRESSED


class ListProblems(NewsletterError):
    """``validate`` found problems in a list: exit 1, like failed checks."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row of a list."""

    line: int
    email: str
    message: str


def _date_problem(value: str) -> str:
    if not value:
        return ""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return f"subscribed_at '{value}' is not a date (write it as YYYY-MM-DD)"
    return ""


def validate_list(path: Path, *, check_dns: bool = False, dns_resolver: Any = None) -> Iterator[Problem]:
    """Every problem of a list, in file order: invalid or duplicate address, unknown status, bad date, bad row.

    Syntax only unless ``check_dns``: then each domain is looked up once (MX,
    then A/AAAA, as email-validator does) and a domain that cannot receive mail
    is a problem. A file that cannot be parsed at all raises NewsletterError.
    """
    path = require_list(path)
    first: dict[str, int] = {}  # key -> line of its first row (ints: a million keys stay small)
    first_status: dict[str, str] = {}  # key -> status of its first row, when that is not subscribed
    domains: dict[str, str] | None = None
    if check_dns:
        domains = {}
        dns_resolver = dns_resolver or email_validator.caching_resolver(timeout=10)
    with read_list(path) as (fmt, records):
        cols = Columns.of(fmt.header)
        for record in records:
            try:
                cells = fmt.cells_of(record.cells, record.line)
            except NewsletterError as err:
                yield Problem(record.line, "", err.reason + f" ({err.hint})")
                continue
            if cells is None:
                continue
            sub = subscriber_of(cols, cells, record.line)
            yield from _row_problems(sub, cols, first, first_status, domains, dns_resolver)


def _row_problems(sub: Subscriber, cols: Columns, first: dict[str, int], first_status: dict[str, str],
                  domains: dict[str, str] | None, dns_resolver: Any) -> Iterator[Problem]:
    if not sub.key:
        why = key_or_problem(sub.email)[1]
        yield Problem(sub.line, sub.email, f"invalid address '{sub.email}': {why}")
    elif sub.key in first:
        line, status = first[sub.key], first_status.get(sub.key, "subscribed")
        wins = next((s for s in (status, sub.status) if s in SUPPRESSED), "") if status != sub.status else ""
        note = f"; '{wins}' wins, so it receives no mail" if wins else ""
        yield Problem(sub.line, sub.email,
                      f"duplicate address '{sub.email}', same as line {line}{note} (keep one row per address)")
    else:
        first[sub.key] = sub.line
        if sub.status != "subscribed":
            first_status[sub.key] = sub.status
        if domains is not None:
            problem = _dns_problem(sub.email, sub.key, domains, dns_resolver)
            if problem:
                yield Problem(sub.line, sub.email, problem)
    if sub.status not in STATUSES:
        close = difflib.get_close_matches(sub.status, STATUSES, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(STATUSES)}"
        yield Problem(sub.line, sub.email, f"unknown status '{sub.status}' ({fix})")
    if cols.subscribed_at is not None:
        problem = _date_problem(sub.fields[cols.header[cols.subscribed_at]])
        if problem:
            yield Problem(sub.line, sub.email, problem)


def _dns_problem(email: str, key: str, domains: dict[str, str], dns_resolver: Any) -> str:
    """Whether the address's domain can receive mail, asked once per domain."""
    domain = key.rpartition("@")[2]
    if domain not in domains:
        try:
            validate_email(email, check_deliverability=True, dns_resolver=dns_resolver)
            domains[domain] = ""
        except EmailNotValidError as err:
            domains[domain] = f"domain '{domain}' cannot receive mail: {err}"
    return domains[domain]
