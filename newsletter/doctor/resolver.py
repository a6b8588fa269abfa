"""DNS look-ups for the doctor, telling a failure apart from an answer.

A missing record and a broken DNS server mean different fixes: "publish a
TXT record" versus "your DNS host is failing, receivers see that too". So a
look-up never raises for DNS reasons; it returns a ``Lookup`` whose
``outcome`` is one of ``ANSWER``, ``NODATA`` (the name exists, not that
record type), ``NXDOMAIN`` (the name does not exist), ``SERVFAIL`` or
``TIMEOUT`` (or ``ERROR`` for anything else, such as a REFUSED answer).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import dns.exception
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.reversename

from ..errors import NewsletterError

ANSWER = "answer"
NODATA = "no record"
NXDOMAIN = "NXDOMAIN"
SERVFAIL = "SERVFAIL"
TIMEOUT = "timeout"
ERROR = "error"
FAILURES = (SERVFAIL, TIMEOUT, ERROR)  # the question was not answered: nothing can be concluded
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Lookup:
    """The answer to one question: its outcome, and the records (as text) when there are some."""

    name: str
    rdtype: str
    outcome: str
    records: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()  # the CNAME chain followed to reach the answer, first hop first
    detail: str = ""

    @property
    def failed(self) -> bool:
        """The DNS did not answer the question (as opposed to answering "there is none")."""
        return self.outcome in FAILURES

    @property
    def found(self) -> bool:
        return self.outcome == ANSWER and bool(self.records)

    def describe(self) -> str:
        """"no TXT record at x", "x does not exist (NXDOMAIN)", "the DNS server failed (SERVFAIL) for x"."""
        what = f"{self.rdtype} of {self.name}"
        return {
            NODATA: f"no {self.rdtype} record at {self.name}",
            NXDOMAIN: f"{self.name} does not exist (NXDOMAIN)",
            SERVFAIL: f"the DNS server failed (SERVFAIL) when asked for the {what}",
            TIMEOUT: f"no DNS answer within the time limit when asked for the {what}",
            ERROR: f"the DNS look-up of the {what} failed: {self.detail}",
        }.get(self.outcome, f"{what}: {', '.join(self.records)}")


def parse_nameserver(value: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) -> (address, port); a name is resolved once, here."""
    text = value.strip()
    host, port = text, 53
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise _bad_nameserver(value)
        if rest:
            if not rest.startswith(":"):
                raise _bad_nameserver(value)
            port = _port(rest[1:], value)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, value)
    if not host:
        raise _bad_nameserver(value)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]), port
    except (OSError, UnicodeError):
        raise NewsletterError(f"--nameserver: cannot find the address of {host!r}",
                              hint="give an IP address, like --nameserver 9.9.9.9 or 127.0.0.1:5353") from None


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad_nameserver(value)
    return int(text)


def _bad_nameserver(value: str) -> NewsletterError:
    return NewsletterError(f"--nameserver {value!r} is not HOST[:PORT]",
                           hint="for example --nameserver 9.9.9.9, 127.0.0.1:5353 or [2001:db8::1]:53")


@dataclass
class DnsClient:
    """Asks one resolver (the system's, or ``--nameserver``) and remembers each answer for this run."""

    nameserver: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    _resolver: dns.resolver.Resolver = field(init=False, repr=False)
    _answers: dict[tuple[str, str], Lookup] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.nameserver:
            address, port = parse_nameserver(self.nameserver)
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [address]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise NewsletterError("this computer has no DNS resolver configured (/etc/resolv.conf)",
                                      hint="pass --nameserver HOST[:PORT]") from None
        self._resolver.lifetime = self.timeout
        self._resolver.timeout = self.timeout
        self._resolver.cache = None

    def lookup(self, name: str, rdtype: str) -> Lookup:
        key = (name.lower().rstrip("."), rdtype)
        if key not in self._answers:
            self._answers[key] = self._ask(key[0], rdtype)
        return self._answers[key]

    def txt(self, name: str) -> Lookup:
        return self.lookup(name, "TXT")

    def addresses(self, name: str) -> tuple[Lookup, tuple[str, ...]]:
        """A and AAAA of ``name``: the first failure (or the A answer) and every address found."""
        a = self.lookup(name, "A")
        if a.outcome in (TIMEOUT, NXDOMAIN):  # AAAA would time out again, or cannot exist either
            return a, ()
        aaaa = self.lookup(name, "AAAA")
        found = (*a.records, *aaaa.records)
        if found:
            return (a if a.found else aaaa), found
        return (a if a.failed or not aaaa.failed else aaaa), ()

    def reverse(self, address: str) -> Lookup:
        return self.lookup(dns.reversename.from_address(address).to_text(omit_final_dot=True), "PTR")

    def _ask(self, name: str, rdtype: str) -> Lookup:
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(name, rdtype, NXDOMAIN)
        except dns.resolver.LifetimeTimeout:
            return Lookup(name, rdtype, TIMEOUT)
        except dns.resolver.NoNameservers as err:
            return Lookup(name, rdtype, SERVFAIL if "SERVFAIL" in str(err) else ERROR, detail=_brief(err))
        except (dns.exception.DNSException, OSError) as err:
            return Lookup(name, rdtype, ERROR, detail=_brief(err))
        cnames = tuple(_text(record) for rrset in answer.response.answer
                       if rrset.rdtype == dns.rdatatype.CNAME for record in rrset)
        if answer.rrset is None:
            return Lookup(name, rdtype, NODATA, cnames=cnames)
        return Lookup(name, rdtype, ANSWER, tuple(_text(r) for r in answer.rrset), cnames)


def _text(rdata: dns.rdata.Rdata) -> str:
    """A record as the doctor reads it: TXT strings joined (RFC 7208 §3.3), names without the final dot."""
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True).lower()}"
    if isinstance(rdata, (dns.rdtypes.ANY.CNAME.CNAME, dns.rdtypes.ANY.PTR.PTR, dns.rdtypes.ANY.NS.NS)):
        return str(rdata.target.to_text(omit_final_dot=True).lower())
    return str(rdata.to_text())


def _brief(err: Exception) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__
