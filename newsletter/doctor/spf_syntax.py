"""The terms of an SPF record, read by the grammar of RFC 7208 §4.6.1, §5, §6 and §12.

A receiver that meets a term it cannot parse (``ipv4:192.0.2.1``, ``include:``
with no domain, ``ip4:192.0.2.0/33``) stops with a permanent error
(permerror) for the whole record, and SPF fails for all mail (§4.6: "if
there are any syntax errors anywhere in the record, check_host() returns
immediately with the result permerror"). Unknown *modifiers* (``name=value``)
are the one thing it must ignore (§6); ``redirect=`` and ``exp=`` may
appear once each.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
MODIFIERS = ("redirect", "exp")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)\Z")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_TOPLABEL = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_LABEL = re.compile(r"[^.\s]+\Z")
_CIDR = re.compile(r"(?:/(\d+))?(?://(\d+))?\Z")


@dataclass(frozen=True)
class Term:
    """One term: a mechanism with its qualifier, or a modifier; ``error`` says why it does not parse."""

    text: str
    qualifier: str = "+"
    name: str = ""  # lowercased mechanism or modifier name
    domain: str = ""  # the domain-spec of include/exists/a/mx/ptr/redirect/exp ("" = the current domain)
    network: str = ""  # ip4/ip6: the address with its prefix ("192.0.2.0/24")
    v4: int | None = None  # a/mx: the CIDR lengths
    v6: int | None = None
    modifier: bool = False
    error: str = ""


def valid_domain_spec(text: str) -> bool:
    """RFC 7208 §7.1 domain-spec: a macro, or a name whose last label is a top label (``example.com``)."""
    if "%" in text:
        return bool(text.strip()) and not any(c.isspace() for c in text)
    labels = text.rstrip(".").split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels) and bool(_TOPLABEL.match(labels[-1]))


def _ip_network(text: str, version: int) -> tuple[str, str]:
    """(network text, "") or ("", why) for an ip4:/ip6: argument."""
    address, slash, length = text.partition("/")
    limit = 32 if version == 4 else 128
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "", f"{address!r} is not an IPv{version} address"
    if ip.version != version:
        return "", f"{address} is an IPv{ip.version} address, written after ip{version}:"
    if slash and not (length.isdigit() and 0 <= int(length) <= limit):
        return "", f"/{length} is not a prefix length from 0 to {limit}"
    return f"{address}/{length or limit}", ""


def parse_term(text: str) -> Term:
    modifier = _MODIFIER.match(text)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in MODIFIERS and not valid_domain_spec(value):
            return Term(text, name=name, modifier=True, error=f"{name}= needs a domain name, not {value!r}")
        return Term(text, name=name, domain=value, modifier=True)
    qualifier = text[0] if text[:1] in "+-~?" else "+"
    body = text[1:] if text[:1] in "+-~?" else text
    head = _NAME.match(body)
    name = head.group(0).lower() if head else ""
    rest = body[len(name):]
    if name not in MECHANISMS or (rest and rest[0] not in ":/"):
        close = difflib.get_close_matches(name or body.lower(), MECHANISMS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return Term(text, qualifier, name, error=f"'{text}' is not an SPF mechanism{hint}")
    return _mechanism(Term(text, qualifier, name), rest)


def _mechanism(term: Term, rest: str) -> Term:
    name, text = term.name, term.text
    if name == "all":
        return term if not rest else Term(text, term.qualifier, name, error="'all' takes no argument")
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            return Term(text, term.qualifier, name, error=f"{name} needs an address: {name}:<address>")
        network, why = _ip_network(rest[1:], int(name[-1]))
        return Term(text, term.qualifier, name, network=network, error=why)
    domain, cidr = "", rest
    if rest.startswith(":"):
        domain, slash, tail = rest[1:].partition("/")
        cidr = slash + tail
        if not valid_domain_spec(domain):
            return Term(text, term.qualifier, name, error=f"{name}: needs a domain name, not {domain!r}")
    if name in ("include", "exists"):
        if not domain or cidr:
            return Term(text, term.qualifier, name, error=f"{name} needs a domain and nothing else: "
                                                           f"{name}:<domain>")
        return Term(text, term.qualifier, name, domain=domain)
    if name == "ptr":
        if cidr:
            return Term(text, term.qualifier, name, error="ptr takes no prefix length")
        return Term(text, term.qualifier, name, domain=domain)
    lengths = _CIDR.match(cidr)
    v4 = int(lengths.group(1)) if lengths and lengths.group(1) else None
    v6 = int(lengths.group(2)) if lengths and lengths.group(2) else None
    if not lengths or (v4 is not None and v4 > 32) or (v6 is not None and v6 > 128):
        return Term(text, term.qualifier, name, error=f"'{cidr}' is not a prefix length (/0-32, //0-128)")
    return Term(text, term.qualifier, name, domain=domain, v4=v4, v6=v6)


def parse_record(record: str) -> tuple[list[Term], list[str]]:
    """(the terms after ``v=spf1``, what makes the record a permerror: bad terms, repeated modifiers)."""
    terms = [parse_term(t) for t in record.split()[1:]]
    errors = [t.error for t in terms if t.error]
    for name in MODIFIERS:
        if sum(1 for t in terms if t.modifier and t.name == name) > 1:
            errors.append(f"{name}= appears more than once")
    return terms, errors
