"""Signing up: the form, the request (checked, limited, answered with a confirmation mail before it is
recorded) and the confirmation (double opt-in)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..errors import NewsletterError
from ..providers import registry
from . import pages
from .limits import HONEYPOT_FIELD, mailbox_key
from .service_base import (
    MAX_FORM_BYTES,
    RETRY_AFTER_SECONDS,
    ServiceBase,
    body_up_to,
    form_fields,
    log,
    reader_key,
    without_address,
)
from .store import CONFIRMED, SUBSCRIBED, Event, now_utc, stamp
from .tokens import SignUp


class SignUpRoutes(ServiceBase):
    """``/subscribe/LIST`` and ``/confirm/TOKEN``."""

    async def subscribe_form(self, request: Request) -> Response:
        list_name = request.path_params["list_name"]
        if not self.served(list_name):
            return self.page("No such list", ["There is no list here by that name."], status=404)
        return HTMLResponse(pages.subscribe_page(self.settings, list_name, HONEYPOT_FIELD),
                            headers={"Cache-Control": "no-store"})

    async def subscribe(self, request: Request) -> Response:
        list_name = request.path_params["list_name"]
        if not self.served(list_name):
            return self.page("No such list", ["There is no list here by that name."], status=404)
        body = await body_up_to(request, MAX_FORM_BYTES, self.body_seconds)
        if isinstance(body, int):
            return self.body_refused(body)
        form = await form_fields(request, body)
        if form is None:
            return self.page("Something is wrong with the form", ["Please fill in the form again."], status=400)
        if form.get(HONEYPOT_FIELD, "").strip():
            return self.page("Something is wrong with the form",
                             ["The form had a field filled in that people leave empty. Please try again."],
                             status=400)
        email, name = form.get("email", "").strip(), " ".join(form.get("name", "").split())[:200]
        try:
            if "\ufffd" in email:  # bytes that were not UTF-8: what the reader typed is lost
                raise EmailNotValidError("not UTF-8")
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            return self.page("Please check the address", [
                "That does not look like an email address. Go back and check it for typing mistakes."],
                status=400)
        if not email.isascii() and not registry.capabilities(self.settings.provider).unicode_addresses:
            return self.page("Please use another address", [
                "We cannot send to addresses with accented or non-Latin letters yet. "
                "Please subscribe with another address."], status=400)
        key = reader_key(email)
        mailbox = mailbox_key(key)  # reader+1@ and Reader+2@ are one inbox: its limits are shared
        client = request.client.host if request.client else "?"
        if self.limits.too_many(client, mailbox):
            return self.page("Too many requests", [
                "There have been too many sign-up requests from here or for this address. "
                "Please wait an hour and try again."], status=429)
        try:
            if not await run_in_threadpool(self.limits.mails_left_today, mailbox):
                return self.page("Too many confirmation emails", [
                    "This address has been sent as many confirmation emails as we send in a day. "
                    "Look for them in your inbox (and spam folder), or try again tomorrow."], status=429)
        except NewsletterError as err:  # no mail for a request the store cannot count
            log.error("event store: %s", err)
            return self.store_down()
        asked_at = stamp(now_utc())
        token = self.confirm_tokens.make(SignUp(list_name, email, name, asked_at))
        try:
            # to the bare address: the name is unconfirmed text, and bots use sign-up forms to carry adverts
            await run_in_threadpool(self.mailer, self.settings, list_name, email, key, "",
                                    f"{self.base}confirm/{token}")
        except NewsletterError as err:  # nothing recorded, so nothing counts against the reader's cap
            log.error("confirmation mail not sent: %s", without_address(str(err), email))
            return self.page("Please try again in a few minutes", [
                "We could not send the confirmation email just now. Please try again shortly."], status=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:  # the mail was accepted: the request and the mail count now
            await run_in_threadpool(self.store.record_confirmation, Event(
                list_name=list_name, kind=SUBSCRIBED, email=email, key=key, name=name, at=asked_at, source="web"),
                mailbox)
        except NewsletterError as err:
            # The mail is on its way and its link works (the confirmation carries when it was asked for);
            # telling the reader "nothing happened" would be false. Only this mail goes uncounted.
            log.error("event store: a confirmation mail went out but was not counted: %s", err)
        return self.page("Check your inbox", [
            f"If that address can receive mail, a message to confirm your subscription to {self.settings.name} "
            "is on its way. Open it and press Confirm.",
            f"The link works for {self.settings.serve.confirm_hours:g} hours. Nothing happens until you confirm."])

    async def confirm_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            sign_up = self.confirm_tokens.read(token)
        except NewsletterError:
            return self.bad_link()
        return self.page("Confirm your subscription", [
            f"Press Confirm to subscribe to {self.settings.name} ({sign_up.list_name})."],
            action=f"/confirm/{token}", button="Confirm")

    async def confirm(self, request: Request) -> Response:
        try:
            sign_up = self.confirm_tokens.read(request.path_params["token"])
        except NewsletterError:
            return self.bad_link()
        if not self.served(sign_up.list_name):
            return self.bad_link()
        try:
            await self.record(Event(list_name=sign_up.list_name, kind=CONFIRMED, email=sign_up.email,
                                    key=reader_key(sign_up.email), name=sign_up.name, at=stamp(now_utc()),
                                    asked_at=sign_up.asked_at, source="web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        return self.page("You are subscribed", [f"Thank you: you will receive {self.settings.name}.",
                                                "Every issue has a link to leave, any time."])
