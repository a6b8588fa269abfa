"""The unsubscribe endpoint answers an RFC 8058 one-click POST with 2xx.

Gmail and Yahoo (2024) require one-click unsubscribe for bulk mail: the
mailbox provider POSTs ``List-Unsubscribe=One-Click`` to the link in the
``List-Unsubscribe`` header and expects it to work without a page, a
cookie or a redirect (RFC 8058 §3.1). The probe sends exactly that, with a
token for ``doctor-probe@invalid`` (a reserved domain no subscriber can
have), so no real subscriber is ever unsubscribed. The host is resolved
through the doctor's DNS client, so ``--nameserver`` decides where it goes.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..compose.unsubscribe import SAMPLE_SECRET, make_token, read_secret, uses_sendgrid_group
from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, Finding, dns_failure

PROBE_ADDRESS = "doctor-probe@invalid"
PROBE_LIST = "doctor-probe"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` while verifying the certificate (and SNI) for the URL's host name."""

    def __init__(self, hostname: str, address: str, port: int, timeout: float):
        super().__init__(hostname, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def probe_url(settings) -> str:
    """The configured unsubscribe URL with a throwaway token that names no subscriber."""
    secret = read_secret(settings, required=False) or SAMPLE_SECRET
    return settings.unsubscribe_url.replace("{token}", make_token(secret, PROBE_LIST, PROBE_ADDRESS))


def check_unsubscribe_endpoint(ctx: DoctorContext) -> Iterator[Finding]:
    settings = ctx.settings
    if not settings.unsubscribe_url:
        if uses_sendgrid_group(settings, ctx.provider):
            yield Finding(INFO, "unsubscribe-sendgrid", "SendGrid's unsubscribe group hosts the one-click "
                          "unsubscribe", ctx.config_path)
        else:
            yield Finding(ERROR, "unsubscribe-none", "no unsubscribe URL is configured; Gmail and Yahoo require "
                          "one-click unsubscribe (RFC 8058) from bulk senders", ctx.config_path,
                          fix="set newsletter.unsubscribe_url = \"https://.../unsubscribe?token={token}\"")
        return
    url = urlsplit(probe_url(settings))
    if url.scheme != "https":
        yield Finding(WARNING, "unsubscribe-not-https", "the unsubscribe URL is not https://; RFC 8058 one-click "
                      "needs an HTTPS link, so mailbox providers show no unsubscribe button", ctx.config_path,
                      fix="serve the unsubscribe endpoint over HTTPS and set newsletter.unsubscribe_url to it")
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
    except ValueError:
        lookup, addresses = ctx.dns.addresses(host)
        if lookup.failed:
            yield dns_failure(lookup, "the unsubscribe endpoint")
            return
        if not addresses:
            yield Finding(ERROR, "unsubscribe-unresolved", f"the unsubscribe host {host} has no address "
                          f"({lookup.describe()}): one-click unsubscribe cannot work", ctx.config_path,
                          fix="publish an A record for it, or correct newsletter.unsubscribe_url")
            return
    yield from _post(ctx, url, host, addresses[0], port)


def _post(ctx: DoctorContext, url, host: str, address: str, port: int) -> Iterator[Finding]:
    timeout = ctx.settings.doctor.probe_timeout
    configured = urlsplit(ctx.settings.unsubscribe_url)
    shown = f"{configured.scheme}://{configured.netloc}{configured.path}"  # as configured: no token, no query
    if url.scheme == "https":
        connection: http.client.HTTPConnection = _PinnedHTTPSConnection(host, address, port, timeout)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    try:
        connection.request("POST", target, body=ONE_CLICK_BODY, headers={
            "Host": url.netloc, "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "newsletter-doctor (RFC 8058 one-click probe)"})
        response = connection.getresponse()
        status = response.status
        response.read(65536)
    except (OSError, http.client.HTTPException, ssl.SSLError) as err:
        reason = f"no answer within {timeout:g} s" if isinstance(err, TimeoutError) else \
            (str(err) or type(err).__name__)
        yield Finding(ERROR, "unsubscribe-unreachable", f"the unsubscribe endpoint {shown} ({address}:{port}) "
                      f"could not be reached: {reason}", ctx.config_path,
                      fix="make sure it is running and reachable (newsletter serve), or correct "
                          "newsletter.unsubscribe_url")
        return
    finally:
        connection.close()
    if 200 <= status < 300:
        yield Finding(INFO, "unsubscribe-one-click", f"the unsubscribe endpoint {shown} answered the one-click "
                      f"POST with {status}", ctx.config_path)
    elif 300 <= status < 400:
        yield Finding(ERROR, "unsubscribe-redirect", f"the unsubscribe endpoint {shown} answered the one-click "
                      f"POST with a redirect ({status}); mailbox providers do not follow it (RFC 8058 §3.1)",
                      ctx.config_path, fix="answer the POST itself with 200, without redirecting")
    else:
        yield Finding(ERROR, "unsubscribe-refused", f"the unsubscribe endpoint {shown} answered the one-click "
                      f"POST (List-Unsubscribe=One-Click) with HTTP {status}", ctx.config_path,
                      fix="accept a POST with the body List-Unsubscribe=One-Click at that URL and answer 200 "
                          "(also for a token of an address not on the list: the probe uses "
                          f"{PROBE_ADDRESS})")
