"""A real DNS server on 127.0.0.1 (UDP and TCP, one ephemeral port) serving test zones, built on dnslib.

It answers as a recursive resolver would for the names it holds: CNAME
chains followed within its data, NOERROR with no answer for a name that
exists without the asked type, NXDOMAIN for a name it does not hold. It can
be told to answer SERVFAIL to everything. ``SilentServer`` is a UDP and TCP
port that never answers (a DNS timeout). Zones are files in
``tests/data/dns/``; every case is served with ``common.zone``.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

ZONES = Path(__file__).resolve().parent / "data" / "dns"


def load_zone(case: str) -> list[RR]:
    """The records of ``tests/data/dns/<case>.zone`` plus ``common.zone``."""
    text = (ZONES / "common.zone").read_text() + "\n" + (ZONES / f"{case}.zone").read_text()
    return RR.fromZone(text)


class ZoneResolver(BaseResolver):
    def __init__(self) -> None:
        self.records: list[RR] = []
        self.servfail = False
        self.questions: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def serve(self, case: str | None = None, *, servfail: bool = False) -> None:
        with self._lock:
            self.records = load_zone(case) if case else []
            self.servfail = servfail

    def _names(self) -> set[DNSLabel]:
        names: set[DNSLabel] = set()
        for rr in self.records:
            label = rr.rname
            names.add(label)
            parts = label.label
            for i in range(1, len(parts)):  # empty non-terminals exist too (RFC 8020)
                names.add(DNSLabel(parts[i:]))
        return names

    def resolve(self, request, handler):
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        with self._lock:
            self.questions.append((str(qname).rstrip("."), QTYPE[qtype]))
            if self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            records = list(self.records)
            names = self._names()
        name = qname
        for _ in range(8):
            matching = [rr for rr in records if rr.rname == name]
            cname = [rr for rr in matching if rr.rtype == QTYPE.CNAME]
            if cname and qtype != QTYPE.CNAME:
                reply.add_answer(cname[0])
                name = cname[0].rdata.label
                continue
            for rr in matching:
                if rr.rtype == qtype:
                    reply.add_answer(rr)
            if not matching and name not in names and name == qname:
                reply.header.rcode = RCODE.NXDOMAIN
            break
        return reply


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return udp, tcp
    raise RuntimeError("no free port for both UDP and TCP on 127.0.0.1")


class DnsStandIn:
    """The zone server, running in threads until ``stop``; ``address`` is "127.0.0.1:PORT"."""

    def __init__(self) -> None:
        self.resolver = ZoneResolver()
        logger = DNSLogger(logf=lambda _: None)
        for _ in range(20):
            udp, tcp = _bind_pair()
            port = udp.getsockname()[1]
            udp.close()
            tcp.close()
            try:
                self._udp = DNSServer(self.resolver, address="127.0.0.1", port=port, logger=logger)
                self._tcp = DNSServer(self.resolver, address="127.0.0.1", port=port, tcp=True, logger=logger)
            except OSError:
                continue
            break
        else:
            raise RuntimeError("could not start the DNS stand-in")
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._udp.start_thread()
        self._tcp.start_thread()

    def stop(self) -> None:
        self._udp.stop()
        self._tcp.stop()
        self._udp.server.server_close()
        self._tcp.server.server_close()


class SilentServer:
    """UDP and TCP sockets on one port of 127.0.0.1 that read nothing and answer nothing."""

    def __init__(self) -> None:
        self._udp, self._tcp = _bind_pair()
        self._tcp.listen(8)
        self.address = f"127.0.0.1:{self._udp.getsockname()[1]}"

    def stop(self) -> None:
        self._udp.close()
        self._tcp.close()
