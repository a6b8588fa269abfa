"""The SendGrid provider, through the real ``sendgrid`` client, against a real stand-in server on 127.0.0.1.

The example issue is built once; batches of its recipients go to the stand-in,
which validates every body against SendGrid's published schema and counts
what it accepted.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from provider_helpers import build_payload, send_batch
from sendgrid_fixtures import REPO, example_message
from sendgrid_standin import DEFAULT_KEY, MAIL_SEND, SendGridStandIn

from newsletter.cli import main
from newsletter.compose.personalize import merge_values
from newsletter.compose.unsubscribe import unsubscribe_url
from newsletter.config import SendGridSettings, load_settings
from newsletter.errors import NewsletterError
from newsletter.lists import normalize_key
from newsletter.providers.base import (
    SENT,
    AuthError,
    Message,
    OutcomeUnknownError,
    Recipient,
    RejectedError,
    TransientError,
)
from newsletter.providers.sendgrid import SendGridProvider, fetch_suppressions, from_settings
from newsletter.providers.sendgrid.body import GROUP_UNSUBSCRIBE_TAG

ISSUE = REPO / "issues" / "2026-11-25-first-dispatch"
SECRET = b"test secret for unsubscribe links"


@pytest.fixture(scope="module")
def settings():
    return load_settings(REPO)


@pytest.fixture(scope="module")
def message(settings) -> Message:
    return example_message(settings)


def recipient(settings, email: str, name: str = "", **columns: str) -> Recipient:
    url = unsubscribe_url(settings, "example", email, SECRET)
    return Recipient(email=email, key=normalize_key(email), name=name,
                     values=merge_values({"email": email, "name": name, **columns}, url))


def readers(settings, count: int, start: int = 0) -> list[Recipient]:
    return [recipient(settings, f"reader{i}@example.com", f"Reader {i}") for i in range(start, start + count)]


@pytest.fixture
def provider(sendgrid_standin: SendGridStandIn) -> SendGridProvider:
    return SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url, timeout=5.0), api_key=DEFAULT_KEY)


def substituted(content: str, substitutions: dict[str, str]) -> str:
    """What SendGrid does with a personalization's substitutions."""
    for token, value in substitutions.items():
        content = content.replace(token, value)
    return content


# --- a batch goes out ---------------------------------------------------------


def test_a_batch_of_1000_validates_and_is_accepted(settings, message, provider, sendgrid_standin):
    batch = readers(settings, 1000)
    deliveries = send_batch(provider, message, batch)

    assert [d.key for d in deliveries] == [r.key for r in batch]
    assert {d.status for d in deliveries} == {SENT}
    assert len({d.message_id for d in deliveries}) == 1 and deliveries[0].message_id
    (request,) = sendgrid_standin.mail_requests()
    assert (request.status, request.recipients) == (202, 1000)
    accepted = sendgrid_standin.accepted
    assert sendgrid_standin.counts() == {r.email: 1 for r in batch}
    assert {a.message_id for a in accepted} == {deliveries[0].message_id}
    assert accepted[7].custom_args == {"issue": "2026-11-25-first-dispatch", "list": "example"}
    assert accepted[7].categories == ("newsletter",)


def test_the_body_shares_one_content_and_personalizes_per_recipient(settings, message):
    batch = readers(settings, 3)
    body = build_payload(message, batch)

    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][1]["value"] == message.html  # the inlined issue, tokens and all, once
    assert body["from"] == {"email": "dispatch@example.com", "name": "The Plain Files Dispatch"}
    assert body["reply_to"] == {"email": "editor@example.com"}
    assert body["subject"] == message.subject
    assert len(body["personalizations"]) == 3
    for person, personalization in zip(batch, body["personalizations"], strict=True):
        assert personalization["to"] == [{"email": person.email, "name": person.name}]
        html, text = message.personalize(person)
        assert substituted(body["content"][1]["value"], personalization["substitutions"]) == html
        assert substituted(body["content"][0]["value"], personalization["substitutions"]) == text
    assert "send_at" not in body and "mail_settings" not in body and "asm" not in body


def test_more_than_1000_recipients_are_refused_before_any_request(settings, message, provider, sendgrid_standin):
    with pytest.raises(ValueError, match="at most 1000"):
        send_batch(provider, message, readers(settings, 1001))
    assert sendgrid_standin.requests == []


def test_an_address_twice_in_a_batch_is_refused_before_any_request(settings, message, provider, sendgrid_standin):
    batch = [*readers(settings, 2), recipient(settings, "Reader1@EXAMPLE.com", "Same reader")]
    with pytest.raises(ValueError, match="twice"):
        send_batch(provider, message, batch)
    assert sendgrid_standin.requests == []


def test_substitutions_are_escaped_for_html_and_intact_for_text(settings, message, provider, sendgrid_standin):
    batch = [recipient(settings, "script@example.com", "<script>alert(1)</script>"),
             recipient(settings, "ann@example.org", 'Ann & "Bob"')]
    send_batch(provider, message, batch)

    by_email = {a.email: a for a in sendgrid_standin.accepted}
    name_tokens = {f.flavour: f.token for f in message.fields if f.name == "subscriber.name"}
    script, ann = by_email["script@example.com"], by_email["ann@example.org"]
    assert script.substitutions[name_tokens["H"]] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert script.substitutions[name_tokens["T"]] == "<script>alert(1)</script>"
    assert ann.substitutions[name_tokens["H"]] == "Ann &amp; &quot;Bob&quot;"
    assert ann.substitutions[name_tokens["T"]] == 'Ann & "Bob"'
    assert all(isinstance(v, str) for a in (script, ann) for v in a.substitutions.values())
    html = substituted(message.html, script.substitutions)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_names_holding_commas_or_semicolons_are_quoted(settings, message, provider, sendgrid_standin):
    # SendGrid splits an unquoted "Lovelace, Ada" at the comma and drops the mail.
    send_batch(provider, message, [recipient(settings, "ada@example.com", "Lovelace, Ada"),
                                  recipient(settings, "bob@example.com", 'Bob; "the builder"')])
    names = {a.email: a.name for a in sendgrid_standin.accepted}
    assert names == {"ada@example.com": '"Lovelace, Ada"', "bob@example.com": '"Bob; \\"the builder\\""'}


def test_a_line_break_in_a_name_is_refused_like_a_bad_recipient(settings, message, provider, sendgrid_standin):
    batch = [*readers(settings, 2), recipient(settings, "evil@example.com", "Eve\r\nBcc: victim@example.org")]
    with pytest.raises(RejectedError) as caught:
        send_batch(provider, message, batch)
    assert caught.value.errors[0][1] == "personalizations.2.to.0"
    assert sendgrid_standin.requests == []


# --- unsubscribe headers ----------------------------------------------------------


def test_list_unsubscribe_headers_carry_https_and_mailto_with_one_click(settings, message, provider,
                                                                        sendgrid_standin):
    person = recipient(settings, "ada@example.com", "Ada")
    send_batch(provider, message, [person])

    (accepted,) = sendgrid_standin.accepted
    assert accepted.headers == {
        "List-Unsubscribe": f"<{person.unsubscribe_url}>, "
                            "<mailto:unsubscribe@example.com?subject=unsubscribe%20ada%40example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert person.unsubscribe_url.startswith("https://newsletter.example.com/unsubscribe/")
    assert accepted.asm_group is None


def test_only_a_mailto_target_means_no_one_click_header(settings, message):
    person = Recipient(email="ada@example.com", key="ada@example.com", values=merge_values({}, ""))
    (personalization,) = build_payload(message, [person])["personalizations"]
    assert personalization["headers"] == {
        "List-Unsubscribe": "<mailto:unsubscribe@example.com?subject=unsubscribe%20ada%40example.com>"}


def test_an_unsubscribe_group_uses_asm_and_sendgrids_own_link(settings, message, provider, sendgrid_standin):
    grouped = dataclasses.replace(message, unsubscribe_group=42)
    person = Recipient(email="ada@example.com", key="ada@example.com", name="Ada",
                       values=merge_values({"name": "Ada"}, GROUP_UNSUBSCRIBE_TAG))
    send_batch(provider, grouped, [person])

    (accepted,) = sendgrid_standin.accepted
    assert accepted.asm_group == 42
    assert accepted.headers == {}  # SendGrid adds List-Unsubscribe itself for a group
    unsubscribe_tokens = [f.token for f in message.fields if f.name == "unsubscribe_url"]
    assert unsubscribe_tokens
    # The tag reaches SendGrid verbatim in every part, not HTML-escaped into "&lt;%...%&gt;".
    sent = [t for t in unsubscribe_tokens if t in accepted.substitutions]  # tokens with one value share a key
    assert sent and {accepted.substitutions[t] for t in sent} == {GROUP_UNSUBSCRIBE_TAG}


# --- scheduling and sandbox -----------------------------------------------------


def test_send_at_schedules_the_batch(settings, message, provider, sendgrid_standin):
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=5)
    send_batch(provider, dataclasses.replace(message, send_at=when), readers(settings, 2))
    assert {a.send_at for a in sendgrid_standin.accepted} == {int(when.timestamp())}


def test_send_at_beyond_72_hours_is_refused_before_any_request(settings, message, provider, sendgrid_standin):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=73)
    with pytest.raises(NewsletterError, match="72 hours"):
        send_batch(provider, dataclasses.replace(message, send_at=when), readers(settings, 2))
    assert sendgrid_standin.requests == []


def test_sandbox_mode_is_accepted_but_delivers_nothing(settings, message, provider, sendgrid_standin):
    deliveries = send_batch(provider, dataclasses.replace(message, sandbox=True), readers(settings, 3))
    assert {d.status for d in deliveries} == {SENT}
    assert [r.status for r in sendgrid_standin.mail_requests()] == [200]
    assert all(a.sandbox for a in sendgrid_standin.accepted)
    assert sendgrid_standin.counts() == {}


# --- refusals and faults ------------------------------------------------------------


def test_a_refused_key_is_an_auth_error_naming_the_variable_never_the_key(settings, message, sendgrid_standin,
                                                                          caplog):
    caplog.set_level(logging.DEBUG)
    sendgrid_standin.echo_headers = True  # a hostile answer that quotes our Authorization header back
    wrong_key = "SG.wrong-key-0123456789.abcdefghijklmnop"
    provider = SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url), api_key=wrong_key)

    with pytest.raises(AuthError) as caught:
        send_batch(provider, message, readers(settings, 2))
    with pytest.raises(AuthError) as at_open:
        provider.open()

    err = caught.value
    assert err.status == 401
    assert str(err).startswith("SendGrid refused the API key (HTTP 401): The provided authorization grant")
    assert "SENDGRID_API_KEY" in str(err) and "Mail Send" in str(err)
    assert sendgrid_standin.requests[0].authorization_ok is False
    assert "Authorization" in err.body  # the echo did come back ...
    for text in (str(err), repr(err), err.body, str(at_open.value), at_open.value.body, caplog.text):
        assert wrong_key not in text  # ... with the key taken out
        assert "wrong-key" not in text
    assert "Bearer" in caplog.text  # python_http_client did log the headers, redacted


def test_403_is_an_auth_error_with_sendgrids_reason(settings, message, provider, sendgrid_standin):
    sendgrid_standin.answer(403, errors=[{"message": "The from address does not match a verified Sender Identity.",
                                          "field": "from", "help": None}])
    with pytest.raises(AuthError) as caught:
        send_batch(provider, message, readers(settings, 2))
    assert caught.value.status == 403
    assert "(HTTP 403): The from address does not match a verified Sender Identity. (field: from)" in str(caught.value)
    assert "verified sender" in str(caught.value) and "SENDGRID_API_KEY" in str(caught.value)


def test_a_key_without_the_mail_send_permission_stops_at_open(sendgrid_standin):
    sendgrid_standin.scopes = ["suppression.read"]
    provider = SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url), api_key=DEFAULT_KEY)
    with pytest.raises(AuthError, match="Mail Send"):
        provider.open()


def test_open_leaves_network_trouble_to_the_first_batch(sendgrid_standin, provider):
    sendgrid_standin.answer(500, path="/v3/scopes")
    provider.open()  # no exception: retries belong to send.py


def test_429_is_transient_with_the_wait_from_x_ratelimit_reset(settings, message, provider, sendgrid_standin):
    sendgrid_standin.rate_limit(reset_in=3)
    with pytest.raises(TransientError) as caught:
        send_batch(provider, message, readers(settings, 2))
    assert caught.value.status == 429
    assert 1.0 <= caught.value.retry_after <= 4.0
    assert sendgrid_standin.counts() == {}


def test_429_falls_back_to_retry_after(settings, message, provider, sendgrid_standin):
    sendgrid_standin.answer(429, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        send_batch(provider, message, readers(settings, 2))
    assert caught.value.retry_after == 7.0


def test_500_is_transient(settings, message, provider, sendgrid_standin):
    sendgrid_standin.answer(500)
    with pytest.raises(TransientError, match="HTTP 500") as caught:
        send_batch(provider, message, readers(settings, 2))
    assert caught.value.status == 500 and not isinstance(caught.value, OutcomeUnknownError)
    # The next batch goes through: the stand-in only misbehaved once.
    assert send_batch(provider, message, readers(settings, 2))[0].status == SENT


def test_a_refused_connection_is_transient(settings, message):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = SendGridProvider(SendGridSettings(api_host=f"http://127.0.0.1:{port}", timeout=2), api_key=DEFAULT_KEY)
    with pytest.raises(TransientError, match="could not reach SendGrid") as caught:
        send_batch(provider, message, readers(settings, 2))
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_a_connection_dropped_after_the_request_is_outcome_unknown(settings, message, provider, sendgrid_standin):
    sendgrid_standin.drop(deliver=True)  # SendGrid took the mail, the answer was lost
    batch = readers(settings, 3)
    with pytest.raises(OutcomeUnknownError, match="may or may not have been delivered"):
        send_batch(provider, message, batch)
    assert sendgrid_standin.counts() == {r.email: 1 for r in batch}  # which is why it must not be resent blindly


def test_a_slow_answer_is_outcome_unknown(settings, message, sendgrid_standin):
    provider = SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url, timeout=0.5), api_key=DEFAULT_KEY)
    sendgrid_standin.slow(3)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError, match=r"no answer within 0.5 s"):
        send_batch(provider, message, readers(settings, 2))
    assert time.monotonic() - started < 2.5


def test_a_400_for_one_address_carries_sendgrids_message_and_field(settings, message, provider, sendgrid_standin):
    sendgrid_standin.refuse_address("broken@example.com", "Does not contain a valid address.")
    batch = [*readers(settings, 4), recipient(settings, "broken@example.com"), *readers(settings, 2, start=4)]
    with pytest.raises(RejectedError) as caught:
        send_batch(provider, message, batch)

    err = caught.value
    assert err.status == 400
    assert err.errors == (("Does not contain a valid address.", "personalizations.4.to.0.email"),)
    assert "Does not contain a valid address. (field: personalizations.4.to.0.email)" in str(err)
    assert sendgrid_standin.counts() == {}
    # Split the way send.py will: the half without the address goes through.
    assert send_batch(provider, message, batch[:4])[0].status == SENT


def test_a_missing_key_names_the_variable(settings, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    with pytest.raises(NewsletterError, match="environment variable SENDGRID_API_KEY is not set"):
        from_settings(settings)


def test_from_settings_reads_the_named_variable(settings, monkeypatch, sendgrid_standin):
    settings = dataclasses.replace(settings, sendgrid=SendGridSettings(api_key_env="MY_SG_KEY",
                                                                       api_host=sendgrid_standin.url))
    monkeypatch.setenv("MY_SG_KEY", DEFAULT_KEY)
    provider = from_settings(settings)
    provider.open()
    assert provider.host == sendgrid_standin.url


# --- the stand-in itself is strict -------------------------------------------------


def post(standin: SendGridStandIn, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(standin.url + MAIL_SEND, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {DEFAULT_KEY}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_standin_refuses_what_sendgrid_refuses(settings, message, sendgrid_standin):
    body = build_payload(message, readers(settings, 2))
    assert post(sendgrid_standin, body)[0] == 202

    numeric = json.loads(json.dumps(body))
    numeric["personalizations"][0]["substitutions"]["NLMRG0001H"] = 7
    status, answer = post(sendgrid_standin, numeric)
    assert status == 400
    assert answer["errors"][0]["field"] == "personalizations.0.substitutions.NLMRG0001H"

    twice = json.loads(json.dumps(body))
    twice["personalizations"][1]["to"][0]["email"] = "READER0@example.com"
    status, answer = post(sendgrid_standin, twice)
    assert status == 400 and "duplicate" in answer["errors"][0]["message"]

    html_first = json.loads(json.dumps(body))
    html_first["content"].reverse()
    assert post(sendgrid_standin, html_first)[0] == 400

    too_many = json.loads(json.dumps(body))
    too_many["personalizations"][0]["to"] = [{"email": f"x{i}@example.com"} for i in range(1001)]
    assert post(sendgrid_standin, too_many)[0] == 400

    later = json.loads(json.dumps(body))
    later["send_at"] = int(time.time()) + 73 * 3600
    assert post(sendgrid_standin, later)[0] == 400

    big_args = json.loads(json.dumps(body))
    big_args["custom_args"]["blob"] = "x" * 10_000
    assert post(sendgrid_standin, big_args)[0] == 400
    assert sendgrid_standin.counts() == {"reader0@example.com": 1, "reader1@example.com": 1}


def test_the_standin_runs_as_a_script(settings, message, tmp_path):
    script = Path(__file__).with_name("sendgrid_standin.py")
    process = subprocess.Popen([sys.executable, str(script), "--port", "0", "--no-validate"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"listening on (http://\S+)", line).group(1)
        provider = SendGridProvider(SendGridSettings(api_host=url), api_key=DEFAULT_KEY)
        send_batch(provider, message, readers(settings, 5))
        with urllib.request.urlopen(url + "/_standin/stats", timeout=5) as response:
            stats = json.loads(response.read())
        assert stats == {"requests": 1, "accepted": 5, "unique": 5, "duplicates": 0}
        with urllib.request.urlopen(urllib.request.Request(
                url + "/_standin/script", data=json.dumps([{"status": 503}]).encode(), method="POST"), timeout=5):
            pass
        with pytest.raises(TransientError, match="HTTP 503"):
            send_batch(provider, message, readers(settings, 5, start=5))
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert "5 recipients accepted" in out


# --- suppressions ---------------------------------------------------------------------


def test_fetch_suppressions_reads_every_kind_page_by_page(sendgrid_standin):
    sendgrid_standin.add_suppressions("unsubscribes", [f"gone{i}@example.com" for i in range(7)])
    sendgrid_standin.add_suppressions("bounces", ["bounce@example.org", "gone1@example.com"])
    sendgrid_standin.add_suppressions("spam_reports", ["angry@example.com", "bounce@example.org"])
    sendgrid_standin.add_suppressions("group", ["grouped@example.com", "GONE2@example.com"], group=42)
    sendgrid_standin.add_suppressions("group", ["other-group@example.com"], group=7)
    provider = SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url, unsubscribe_group=42),
                                api_key=DEFAULT_KEY)

    found = fetch_suppressions(provider, page_size=3)

    assert found == {
        **{f"gone{i}@example.com": "unsubscribed" for i in range(7)},
        "gone1@example.com": "bounced",  # the more specific status wins
        "bounce@example.org": "complained",
        "angry@example.com": "complained",
        "grouped@example.com": "unsubscribed",
        "GONE2@example.com": "unsubscribed",
    }
    offsets = [r.query["offset"] for r in sendgrid_standin.requests if r.path == "/v3/suppression/unsubscribes"]
    assert offsets == ["0", "3", "6"]
    assert {r.path for r in sendgrid_standin.requests} == {
        "/v3/suppression/unsubscribes", "/v3/suppression/bounces", "/v3/suppression/spam_reports",
        "/v3/asm/groups/42/suppressions"}


def test_fetch_suppressions_stops_when_an_endpoint_ignores_paging(sendgrid_standin, provider):
    sendgrid_standin.add_suppressions("bounces", [f"b{i}@example.com" for i in range(4)])
    sendgrid_standin.max_page = 10_000
    # A page size the server ignores: every "page" repeats the whole list.
    sendgrid_standin.suppression_page = lambda path, query, page=sendgrid_standin.suppression_page: page(
        path, {})
    assert len(fetch_suppressions(provider, page_size=2)) == 4


def test_fetch_suppressions_refused_key_names_the_permission(sendgrid_standin):
    provider = SendGridProvider(SendGridSettings(api_host=sendgrid_standin.url), api_key="SG.nope")
    with pytest.raises(AuthError, match="Suppressions"):
        fetch_suppressions(provider)


def list_rows(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {(row["email"], row["name"]): row["status"] for row in csv.DictReader(handle)}


def test_subscribers_sync_marks_the_rows_sendgrid_suppresses(sendgrid_newsletter, sendgrid_standin):
    sendgrid_standin.add_suppressions("unsubscribes", ["ADA@example.com", "nobody@example.net"])
    sendgrid_standin.add_suppressions("bounces", ["grace@example.org", "alan@example.com"])
    sendgrid_standin.add_suppressions("spam_reports", ["katherine@example.org"])
    path = sendgrid_newsletter / "subscribers" / "example.csv"
    before = list_rows(path)

    result = CliRunner().invoke(main, ["--root", str(sendgrid_newsletter), "subscribers", "sync",
                                       "--list", "example"])

    assert result.exit_code == 0, result.output
    after = list_rows(path)
    assert after == {
        **before,
        ("ada@example.com", "Ada Lovelace"): "unsubscribed",
        ("Ada@EXAMPLE.com", "Ada (duplicate row)"): "unsubscribed",
        ("grace@example.org", "Grace Hopper"): "bounced",
        ("katherine@example.org", "Katherine Johnson"): "complained",
        ("alan@example.com", "Alan Turing"): "bounced",  # was unsubscribed: bounced says more (issue 20)
    }
    assert "ada@example.com: subscribed -> unsubscribed" in result.output
    assert "grace@example.org: subscribed -> bounced" in result.output
    assert "marked 4 address(es)" in result.output and "1 of them not on this list" in result.output

    again = CliRunner().invoke(main, ["--root", str(sendgrid_newsletter), "subscribers", "sync", "--list", "example"])
    assert again.exit_code == 0 and "already agrees" in again.output


def test_subscribers_sync_dry_run_writes_nothing(sendgrid_newsletter, sendgrid_standin):
    sendgrid_standin.add_suppressions("bounces", ["grace@example.org"])
    path = sendgrid_newsletter / "subscribers" / "example.csv"
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["--root", str(sendgrid_newsletter), "subscribers", "sync",
                                       "--list", "example", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "grace@example.org: subscribed -> bounced" in result.output and "Dry run" in result.output
    assert path.read_bytes() == before


def test_subscribers_sync_without_a_key_says_which_variable(sendgrid_newsletter, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = CliRunner().invoke(main, ["--root", str(sendgrid_newsletter), "subscribers", "sync",
                                       "--list", "example"])
    assert result.exit_code == 1  # the service's events are applied; SendGrid's part is skipped (issue 20)
    assert "SENDGRID_API_KEY is not set" in result.output


def test_no_value_is_sent_twice_in_one_personalization(settings, message):
    """Issue 13: a value whose HTML and text forms agree for the whole batch goes once per personalization;
    the batch's content uses that one token in both parts."""
    from newsletter.compose.merge import TOKEN_PATTERN

    body = build_payload(message, readers(settings, 50))
    for personalization in body["personalizations"]:
        values = list(personalization["substitutions"].values())
        assert len(values) == len(set(values)), values
    keys = set(body["personalizations"][0]["substitutions"])
    used = {m.group(0) for part in body["content"] for m in TOKEN_PATTERN.finditer(part["value"])}
    assert used == keys
    assert len(keys) < len(message.fields)  # fewer keys than tokens: HTML and text forms merged


def test_only_recipients_whose_value_has_two_forms_carry_two_keys(settings, message, provider, sendgrid_standin):
    """Issue 13: one name with differing HTML and text forms (``Ann & Bob``) no longer makes every
    personalization of its batch carry both forms: it goes in a body of its own, the others keep one key."""
    from newsletter.providers.sendgrid import encode

    ann = recipient(settings, "ann@example.org", "Ann & Bob")
    batch = [*readers(settings, 20), ann, *readers(settings, 5, start=20)]
    bodies = encode(message, batch).data
    assert [len(keys) for keys, _ in bodies] == [25, 1] and bodies[1][0] == (ann.key,)
    parsed = [json.loads(body) for _, body in bodies]
    for body in parsed:
        for personalization in body["personalizations"]:
            values = list(personalization["substitutions"].values())
            assert len(values) == len(set(values)), values
    plain, own = (len(body["personalizations"][0]["substitutions"]) for body in parsed)
    assert plain < own
    # Each body's content and substitutions give every recipient exactly their own copy.
    for (keys, _), body in zip(bodies, parsed, strict=True):
        for key, personalization in zip(keys, body["personalizations"], strict=True):
            person = next(r for r in batch if r.key == key)
            html, text = message.personalize(person)
            assert substituted(body["content"][1]["value"], personalization["substitutions"]) == html
            assert substituted(body["content"][0]["value"], personalization["substitutions"]) == text
    # Delivered through the stand-in (which validates both bodies): everybody once.
    deliveries = send_batch(provider, message, batch)
    assert [(d.key, d.status) for d in deliveries] == [(r.key, SENT) for r in batch]
    assert sorted(sendgrid_standin.counts()) == sorted(r.email for r in batch)
    assert max(sendgrid_standin.counts().values()) == 1
