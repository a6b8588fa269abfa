"""Requesting the issue's links for ``--check-links``: HEAD first, GET when HEAD is refused, redirects
followed with the method kept, at most ``[checks] link_concurrency`` at a time. Loaded only when asked:
the HTTP machinery is no part of an ordinary check."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO

from .. import __version__

USER_AGENT = f"newsletter-link-check/{__version__} (+https://pypi.org/project/newsletter/)"
_MAX_REDIRECTS = 10


@dataclass(frozen=True)
class LinkStatus:
    """What requesting a URL gave: an HTTP status, or an error when nothing answered."""

    url: str
    status: int | None = None
    error: str = ""
    unreachable: bool = False  # no such host, connection refused, bad certificate: certainly broken for readers
    timed_out: bool = False



class _KeepMethodRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects with the same method (urllib turns a redirected HEAD into a GET)."""

    max_redirections = _MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
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
