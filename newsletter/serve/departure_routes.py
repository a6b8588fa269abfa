"""Leaving: an unsubscribe link's page and its one-click POST (RFC 8058), and the way back for a reader who
pressed by mistake."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..compose.unsubscribe import verify_token
from ..errors import NewsletterError
from .service_base import MAX_FORM_BYTES, ONE_CLICK_BODY, ServiceBase, body_up_to, log, names_no_one, reader_key
from .store import CONFIRMED, UNSUBSCRIBED, Event, now_utc, stamp
from .tokens import SignUp


class DepartureRoutes(ServiceBase):
    """``/unsubscribe/TOKEN`` and ``/resubscribe/TOKEN``."""

    def list_of(self, token: str) -> tuple[str, str] | None:
        """(list, address) a genuine unsubscribe token names, among the served lists."""
        for list_name in self.lists:
            try:
                return list_name, verify_token(self.secret, list_name, token)
            except NewsletterError:
                continue
        return None

    async def unsubscribe_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self.list_of(token)
        if found is None:
            return self.bad_link()
        return self.page("Unsubscribe", [f"Stop receiving {self.settings.name} ({found[0]})?"],
                         action=f"/unsubscribe/{token}", button="Unsubscribe")

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self.list_of(token)
        if found is None:
            return self.bad_link()
        list_name, email = found
        body = await body_up_to(request, MAX_FORM_BYTES, self.body_seconds)
        if isinstance(body, int):
            return self.body_refused(body)
        one_click = body[:200].decode("utf-8", "replace").strip() == ONE_CLICK_BODY
        if names_no_one(email):  # `newsletter doctor`'s probe: answered as any one-click, nothing recorded
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        try:
            await self.record(Event(list_name=list_name, kind=UNSUBSCRIBED, email=email, key=reader_key(email),
                                    at=stamp(now_utc()), source="one-click" if one_click else "web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        if one_click:
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        way_back = self.resubscribe_tokens.make(SignUp(list_name, email, "", stamp(now_utc())))
        return self.page("You are unsubscribed", [
            f"You will not receive {self.settings.name} ({list_name}) any more.",
            "Changed your mind, or pressed by mistake?"], action=f"/resubscribe/{way_back}", button="Subscribe again")

    async def resubscribe(self, request: Request) -> Response:
        try:
            sign_up = self.resubscribe_tokens.read(request.path_params["token"])
        except NewsletterError:
            return self.bad_link()
        if not self.served(sign_up.list_name):
            return self.bad_link()
        list_name, email = sign_up.list_name, sign_up.email
        now = stamp(now_utc())
        try:  # the button came from the page their own unsubscribe link led to, minutes ago
            await self.record(Event(list_name=list_name, kind=CONFIRMED, email=email, key=reader_key(email), at=now,
                                    asked_at=now, source="web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        return self.page("Welcome back", [f"You are subscribed to {self.settings.name} ({list_name}) again."])
