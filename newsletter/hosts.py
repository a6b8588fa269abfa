"""What kind of host a name or address is: the preview, the SMTP provider, the subscriber
service and the doctor all decide things by it (bind only to loopback, allow plain SMTP
only to this machine, refuse http on a public host, skip DNS checks of a local relay)."""

from __future__ import annotations

import ipaddress

LOCAL_NAMES = ("localhost", "localhost.localdomain")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost`` or an address of this machine's loopback (``127.0.0.0/8``, ``[::1]``)."""
    if host.strip("[]").lower() in LOCAL_NAMES:
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def is_local(host: str) -> bool:
    """Loopback, or an address of a private or link-local network: not a host on the internet."""
    if is_loopback(host):
        return True
    address = _address(host)
    return address is not None and (address.is_private or address.is_link_local)
