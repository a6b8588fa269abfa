"""Links: every link and image address is well formed, and (on request) answers.

Without network access this checks what a mail client needs: absolute,
well-formed http(s) URLs with a valid host, valid ``mailto:`` addresses
(email-validator, no DNS), no scripts or local files, and in-page ``#anchors``
that exist. With ``--check-links`` (``CheckOptions(check_links=True)``) each distinct http(s)
URL is requested, HEAD first and GET when HEAD is refused, with the timeout
and concurrency of ``[checks]`` in newsletter.toml. The sample recipient's
unsubscribe URL is never requested: a GET there could unsubscribe someone.
Relative and empty URLs are reported by the basic checks (basic.py).
"""

from __future__ import annotations

import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .. import __version__
from ..compose.markdown import is_absolute
from ..compose.merge import TOKEN_PREFIX
from ..compose.personalize import UNSUBSCRIBE_FIELD
from .framework import ERROR, WARNING, CheckContext, Finding

USER_AGENT = f"newsletter-link-check/{__version__} (+https://pypi.org/project/newsletter/)"
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_UNSAFE_SCHEMES = {"javascript", "vbscript", "file", "data"}
_KNOWN_SCHEMES = {"http", "https", "mailto", "tel", "sms"}
_MAX_REDIRECTS = 10
# Answers that usually mean "no robots" rather than "gone": reported, but not as errors.
_REFUSALS = {401, 403, 429}


@dataclass(frozen=True)
class LinkUse:
    """One address in the email: where it appears (element, attribute) and which file it comes from."""

    url: str
    tag: str
    attribute: str


@dataclass(frozen=True)
class LinkStatus:
    """What requesting a URL gave: an HTTP status, or an error when nothing answered."""

    url: str
    status: int | None = None
    error: str = ""
    unreachable: bool = False  # no such host, connection refused, bad certificate: certainly broken for readers
    timed_out: bool = False


def links_in(document) -> list[LinkUse]:
    """Every link (<a href>) and image (<img src>) address in the email, in document order."""
    uses = []
    for element in document.iter("a", "img"):
        attribute = "href" if element.tag == "a" else "src"
        url = element.get(attribute)
        if url is not None:
            uses.append(LinkUse(url.strip(), element.tag, attribute))
    return uses


def host_problem(host: str) -> str:
    """Why ``host`` cannot be a host name, or ""."""
    if not host:
        return "it has no host"
    if host.startswith("[") or re.fullmatch(r"[\d.]+", host):
        return ""  # an IP address; urlsplit has checked an IPv6 literal
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return f"host '{host}' is not a valid domain name"
    labels = ascii_host.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return f"host '{host}' is not a valid domain name"
    if len(labels) < 2 and ascii_host.lower() != "localhost":
        return f"host '{host}' has no domain (like example.com)"
    return ""


def url_problem(url: str) -> tuple[str, str] | None:
    """(severity, reason) when ``url`` is malformed or unusable in an email, else None."""
    if any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        return ERROR, "it contains spaces or line breaks"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as err:
        return ERROR, f"it cannot be parsed ({err})"
    scheme = parts.scheme.lower()
    if scheme in _UNSAFE_SCHEMES:
        return ERROR, f"{scheme}: addresses are removed or blocked by mail clients"
    if scheme in ("http", "https"):
        problem = host_problem(parts.hostname or "")
        return (ERROR, problem) if problem else None
    if scheme == "mailto":
        addresses = [a for a in unquote(parts.path).split(",") if a.strip()]
        if not addresses:
            return ERROR, "the mailto: link has no address"
        from email_validator import EmailNotValidError, validate_email  # here: most emails have no mailto: link

        for address in addresses:
            try:
                validate_email(address.strip(), check_deliverability=False)
            except EmailNotValidError as err:
                return ERROR, f"'{address.strip()}' is not a valid address: {err}"
        return None
    if scheme not in _KNOWN_SCHEMES:
        return WARNING, f"'{scheme}:' links open nothing in most mail clients"
    return None


def check_link_syntax(ctx: CheckContext) -> Iterator[Finding]:
    ids = {el.get("id") for el in ctx.document.iter() if isinstance(el.tag, str) and el.get("id")}
    names = {el.get("name") for el in ctx.document.iter("a") if el.get("name")}
    seen: set[str] = set()
    for use in links_in(ctx.document):
        url = use.url
        if url in seen or not url or TOKEN_PREFIX in url:
            continue
        seen.add(url)
        kind = "link" if use.tag == "a" else "image"
        if url.startswith("#"):
            target = unquote(url[1:])
            if use.tag == "a" and target and target not in ids and target not in names:
                where, line = ctx.place_of_address(url)
                yield Finding(WARNING, "anchor-missing", f"link {url} points to no element with id=\"{target}\"",
                              where, line, fix=f"add id=\"{target}\" to the target, or fix the link")
            continue
        if not is_absolute(url):  # the basic checks report relative URLs
            continue
        problem = url_problem(url)
        if problem is None and use.tag == "img" and urlsplit(url).scheme.lower() not in ("http", "https"):
            problem = ERROR, "images must be http(s) addresses to be shown"
        if problem:
            severity, reason = problem
            code = "bad-mailto" if url.lower().startswith("mailto:") else "malformed-url"
            where, line = ctx.place_of_address(url)
            yield Finding(severity, code, f"{kind} '{url}' is unusable: {reason}", where, line,
                          fix="correct the address (full https://... URL, or mailto:name@example.com)")


# --- requesting links (--check-links) ----------------------------------------

class _KeepMethodRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects with the same method (urllib turns a redirected HEAD into a GET)."""

    max_redirections = _MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and req.get_method() == "HEAD":
            new.method = "HEAD"
        return new


def _opener() -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()
    return urllib.request.build_opener(_KeepMethodRedirects(), urllib.request.HTTPSHandler(context=context))


def _request(opener: urllib.request.OpenerDirector, url: str, method: str, timeout: float) -> LinkStatus:
    request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    try:
        with opener.open(request, timeout=timeout) as response:
            if method == "GET":
                response.read(1024)  # enough to know the body starts; never the whole page
            return LinkStatus(url, response.status)
    except urllib.error.HTTPError as err:
        err.close()
        return LinkStatus(url, err.code)
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return LinkStatus(url, error=f"no answer within {timeout:g} s", timed_out=True)
        if isinstance(reason, socket.gaierror):
            return LinkStatus(url, error="the host name does not resolve", unreachable=True)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return LinkStatus(url, error=f"its TLS certificate is not valid ({reason.verify_message})",
                              unreachable=True)
        if isinstance(reason, ConnectionRefusedError):
            return LinkStatus(url, error="the connection was refused", unreachable=True)
        return LinkStatus(url, error=str(reason))
    except TimeoutError:
        return LinkStatus(url, error=f"no answer within {timeout:g} s", timed_out=True)
    except (OSError, ValueError) as err:  # reset connections, malformed responses, bad ports
        return LinkStatus(url, error=str(err) or type(err).__name__)


def probe(url: str, timeout: float, opener: urllib.request.OpenerDirector | None = None) -> LinkStatus:
    """Request ``url`` with HEAD, then with GET if HEAD fails or is refused (many servers mishandle HEAD).
    A host that does not answer HEAD in time is not asked again, so one URL costs at most ``timeout``
    per request it makes."""
    opener = opener or _opener()
    head = _request(opener, url, "HEAD", timeout)
    if (head.status is not None and head.status < 400) or head.unreachable or head.timed_out:
        return head
    return _request(opener, url, "GET", timeout)


def probe_all(urls: Iterable[str], timeout: float, concurrency: int) -> list[LinkStatus]:
    """Probe each URL once, at most ``concurrency`` at a time, in the order given."""
    urls = list(dict.fromkeys(urls))
    if not urls:
        return []
    opener = _opener()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(urls)))) as pool:
        return list(pool.map(lambda u: probe(u, timeout, opener), urls))


def status_finding(ctx: CheckContext, status: LinkStatus, kind: str) -> Finding | None:
    """The finding for one probed URL: None when it answered with success."""
    where, line = ctx.place_of_address(status.url)
    if status.status is not None:
        if status.status < 400:
            return None
        if status.status in _REFUSALS or status.status >= 500:
            return Finding(WARNING, "link-refused" if status.status < 500 else "link-server-error",
                           f"{kind} {status.url} answered HTTP {status.status}", where, line,
                           fix="open it in a browser: if it works there, the site only refuses robots; "
                               "otherwise fix or remove the link")
        return Finding(ERROR, "link-broken", f"{kind} {status.url} is broken: HTTP {status.status}", where, line,
                       fix="fix the address or remove the link")
    if status.unreachable:
        return Finding(ERROR, "link-unreachable", f"{kind} {status.url} is unreachable: {status.error}", where,
                       line, fix="fix the address or remove the link")
    return Finding(WARNING, "link-unchecked", f"{kind} {status.url} could not be checked: {status.error}",
                   where, line, fix="try again later, or raise checks.link_timeout in newsletter.toml")


def check_links_online(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.options.check_links:
        return
    skip = {ctx.sample_values.get(UNSUBSCRIBE_FIELD, "")}
    kinds: dict[str, str] = {}
    for use in links_in(ctx.document):
        scheme = urlsplit(use.url).scheme.lower()
        if scheme in ("http", "https") and use.url not in skip and url_problem(use.url) is None:
            kinds.setdefault(use.url, "link" if use.tag == "a" else "image")
    settings = ctx.settings.checks
    for status in probe_all(kinds, settings.link_timeout, settings.link_concurrency):
        finding = status_finding(ctx, status, kinds[status.url])
        if finding:
            yield finding


CHECKS = [check_link_syntax, check_links_online]
