"""The unsubscribe endpoint answers an RFC 8058 one-click POST with 2xx, and unsubscribes nobody doing so.

Gmail and Yahoo (2024) require one-click unsubscribe for bulk mail: the
mailbox provider POSTs ``List-Unsubscribe=One-Click`` to the link in the
``List-Unsubscribe`` header and expects it to work without a page, a
cookie or a redirect (RFC 8058 §3.1). The probe sends exactly that, with a
genuine token (keyed with the unsubscribe secret, for the first list
``newsletter serve`` serves) for ``doctor-probe@invalid``: ``.invalid`` is
reserved (RFC 6761 §6.4), so no subscriber can have it, and ``newsletter
serve`` answers a token for such an address as it answers any one-click,
with 200, without recording anything. The host is resolved through the
doctor's DNS client, so ``--nameserver`` decides where it goes.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import SplitResult, urlsplit

from ..compose.unsubscribe import SAMPLE_SECRET, make_token, provider_group, read_secret
from ..config import Settings
from ..secret_names import variable_name
from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found

PROBE_ADDRESS = "doctor-probe@invalid"
PROBE_LIST = "doctor-probe"  # the list named in the token when newsletter serve serves none
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
RULE = "RFC 8058 §3.1 (one-click: a POST answered without redirect); Gmail and Yahoo bulk-sender rules"
ONE_CLICK = "unsubscribe-one-click"  # the code of a probe that was answered 2xx


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` while verifying the certificate (and SNI) for the URL's host name."""

    def __init__(self, hostname: str, address: str, port: int, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(hostname, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def probe_list(settings: Settings) -> str:
    """The list the probe's token is for: the first one ``newsletter serve`` serves (so serve knows the
    token), else a list of its own."""
    return settings.serve.lists[0] if settings.serve.lists else PROBE_LIST


def probe_url(settings: Settings) -> str:
    """The configured unsubscribe URL with a token for ``doctor-probe@invalid``, who is no subscriber."""
    secret = read_secret(settings, required=False) or SAMPLE_SECRET
    return settings.unsubscribe_url.replace("{token}", make_token(secret, probe_list(settings), PROBE_ADDRESS))


def check_unsubscribe_endpoint(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    settings = ctx.settings
    if not settings.unsubscribe_url:
        if provider_group(settings, ctx.kind) is not None:
            yield found(INFO, f"unsubscribe-{ctx.kind.name}", f"{ctx.kind.title}'s unsubscribe group hosts the "
                        "one-click unsubscribe", ctx.config_path, rule=RULE)
        else:
            yield found(ERROR, "unsubscribe-none", "no unsubscribe URL is configured; Gmail and Yahoo require "
                        "one-click unsubscribe from bulk senders", ctx.config_path,
                        fix="set newsletter.unsubscribe_url = \"https://.../unsubscribe/{token}\" (newsletter serve)",
                        rule=RULE)
        return
    url = urlsplit(probe_url(settings))
    if url.scheme != "https":
        yield found(WARNING, "unsubscribe-not-https", "the unsubscribe URL is not https://, so mailbox providers "
                    "show no unsubscribe button", ctx.config_path,
                    fix="serve the unsubscribe endpoint over HTTPS and set newsletter.unsubscribe_url to it",
                    rule="RFC 8058 §3.1 (the URI must be HTTPS)")
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
            yield found(ERROR, "unsubscribe-unresolved", f"the unsubscribe host {host} has no address "
                        f"({lookup.describe()}): one-click unsubscribe cannot work", ctx.config_path,
                        fix="publish an A record for it, or correct newsletter.unsubscribe_url", rule=RULE)
            return
    yield from _post(ctx, url, host, addresses[0], port)


def _post(ctx: DoctorContext, url: SplitResult, host: str, address: str, port: int) -> Iterator[DoctorFinding]:
    timeout = ctx.settings.doctor.probe_timeout
    configured = urlsplit(ctx.settings.unsubscribe_url)
    shown = f"{configured.scheme}://{configured.netloc}{configured.path}"  # as configured: no token, no query
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        connection = _PinnedHTTPSConnection(host, address, port, timeout)
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
        yield found(ERROR, "unsubscribe-unreachable", f"the unsubscribe endpoint {shown} ({address}:{port}) "
                    f"could not be reached: {reason}", ctx.config_path,
                    fix="make sure it is running and reachable (newsletter serve), or correct "
                        "newsletter.unsubscribe_url", rule=RULE)
        return
    finally:
        connection.close()
    if 200 <= status < 300:
        yield found(INFO, ONE_CLICK, f"the unsubscribe endpoint {shown} answered the one-click POST with "
                    f"{status}", ctx.config_path, rule=RULE)
    elif 300 <= status < 400:
        yield found(ERROR, "unsubscribe-redirect", f"the unsubscribe endpoint {shown} answered the one-click "
                    f"POST with a redirect ({status}); mailbox providers do not follow it", ctx.config_path,
                    fix="answer the POST itself with 200, without redirecting", rule=RULE)
    else:
        yield found(ERROR, "unsubscribe-refused", f"the unsubscribe endpoint {shown} answered the one-click "
                    f"POST (List-Unsubscribe=One-Click) with HTTP {status}", ctx.config_path,
                    fix=_refused_fix(ctx.settings), rule=RULE)


def _refused_fix(settings: Settings) -> str:
    """What to do about a refused probe: the secret first, since a token made without it is refused rightly."""
    variable = variable_name("newsletter.unsubscribe_secret_env", settings.unsubscribe_secret_env)
    if read_secret(settings, required=False) is None:
        return (f"{variable} is not set where the doctor ran, so its probe token was not made with your secret "
                f"and the endpoint was right to refuse it: run newsletter doctor with {variable} set as for "
                "newsletter serve and newsletter send")
    return (f"if the endpoint is newsletter serve, give it the same {variable} as the doctor and make sure it "
            f"serves the list '{probe_list(settings)}' ([serve] lists; the probe's token is for that list); "
            "any other endpoint must answer the POST with 200 for a genuine token of an address it does not "
            f"know (the probe names {PROBE_ADDRESS}, which is no subscriber)")
