"""Every test newsletter's live sends ask the doctor, as a writer's do, of the DNS stand-in.

A live send checks the sending setup first (``[doctor] nameserver``, else the system's resolver). The
suite must never ask a real resolver, so each test's copy of the example newsletter names a DNS stand-in
(``tests/dns_standin.py``) serving ``good.zone``, a setup that passes: one stand-in per test process,
started by conftest's session fixture. Tests about the gate itself serve other zones from their own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dns_standin import DnsStandIn

PASSING_ZONE = "good"
_server: DnsStandIn | None = None


def start() -> DnsStandIn:
    """The process's stand-in, serving a passing setup (started once)."""
    global _server
    if _server is None:
        _server = DnsStandIn()
        _server.resolver.serve(PASSING_ZONE)
    return _server


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def set_doctor(root: Path, **values: str | float) -> None:
    """Set ``[doctor]`` settings in ``root``'s newsletter.toml, in its one ``[doctor]`` table."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())  # TOML's strings and numbers
    header = re.search(r"^\[doctor\][ \t]*\n", text, flags=re.MULTILINE)
    if header is None:  # a table of its own before the first (tests append to the last one, [serve])
        first = re.search(r"^\[", text, flags=re.MULTILINE)
        at = first.start() if first else len(text)
        text = text[:at] + f"[doctor]\n{lines}\n" + text[at:]
    else:
        for key in values:  # a value set before is replaced
            text = re.sub(rf"^{re.escape(key)}[ \t]*=.*\n", "", text, flags=re.MULTILINE)
        header = re.search(r"^\[doctor\][ \t]*\n", text, flags=re.MULTILINE)
        assert header is not None
        text = text[:header.end()] + lines + text[header.end():]
    path.write_text(text, encoding="utf-8")


def point_doctor_at_standin(root: Path) -> None:
    """``root``'s live sends ask the stand-in's passing setup."""
    set_doctor(root, nameserver=start().address)
