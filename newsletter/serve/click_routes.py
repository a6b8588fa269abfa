"""Clicks: a click link's redirect, with the click recorded as a reader's or a program's (and why)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..compose.click_tokens import HONEYPOT, Click
from ..errors import NewsletterError
from .clicks import HEAD, HONEYPOT_HIT, PREFETCH, request_reason
from .service_base import ServiceBase, log, reader_key
from .store import ClickRecord, stamp


class ClickRoutes(ServiceBase):
    """``/c/TOKEN``."""

    async def click(self, request: Request) -> Response:
        """A click link: the click recorded (a reader's, or a program's and why), then the redirect to where
        the writer linked. A token that is not genuine leads nowhere: the same 400 page as a bad unsubscribe
        link. A store that fails loses the count, never the reader: the redirect is answered all the same."""
        found = self.click_keys.read(request.path_params["token"])
        if found is None:
            return self.bad_link()
        now = self.clock()
        client = self.scanners.client(request.client.host if request.client else "?",
                                      request.headers.get("user-agent", ""))
        reason = request_reason(request.method, request.headers, now.timestamp(), found.sent_at,
                                self.settings.stats.human_after_seconds)
        if found.link == HONEYPOT and reason not in (HEAD, PREFETCH):  # a program followed the hidden link
            earlier = self.scanners.honeypot(client, found.reader)
            await self._record_click(found, now, HONEYPOT_HIT, earlier)
        else:
            if not reason and self.scanners.caught(client, found.reader):
                reason = HONEYPOT_HIT
            click_id = await self._record_click(found, now, reason)
            if click_id and found.link != HONEYPOT:
                self.scanners.clicked(client, found.reader, click_id)
        return RedirectResponse(found.url or self.base or "/", status_code=302,
                                headers={"Cache-Control": "no-store"})

    async def _record_click(self, found: Click, now: dt.datetime, reason: str, earlier: Sequence[int] = ()) -> int:
        record = ClickRecord(issue=found.issue, link=found.link, url=found.url, reader=found.reader,
                             group=found.group, variant=found.variant, sent_at=found.sent_at, at=stamp(now),
                             human=not reason, reason=reason)
        try:
            click_id = await run_in_threadpool(self.store.record_click, record)
            if earlier:
                await run_in_threadpool(self.store.mark_clicks, earlier, HONEYPOT_HIT)
        except NewsletterError as err:
            log.error("event store: a click was not counted: %s", err)
            return 0
        return click_id

    def reader_of(self, issue: str, email: str) -> str:
        """The reader key a click link of ``issue`` carries for ``email`` (for the provider's events)."""
        return self.click_keys.reader_key(issue, reader_key(email)).hex()
