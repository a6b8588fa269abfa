"""The SendGrid request bodies, byte for byte, against a plain reference written with dicts and ``json``.

``encode`` writes its JSON a column at a time, and ``recipients_of`` makes a
batch's recipients at once (tokens, fields): both for speed. Neither may change
a byte of what goes out, nor a token, nor which recipient is refused. The
reference below follows the body's rules as the provider documents them, one
recipient at a time, so any difference in escaping, key order, the
de-duplication of equal values, the List-Unsubscribe headers or the grouping
into bodies shows up as unequal bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from provider_helpers import build_payload
from sendgrid_fixtures import REPO, example_message

from newsletter.compose.merge import MergeField
from newsletter.compose.personalize import UNSUBSCRIBE_FIELD, subscriber_values
from newsletter.compose.unsubscribe import UnsubscribeLinks, verify_token
from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.providers.base import Message, Recipient, RejectedError
from newsletter.providers.sendgrid import encode
from newsletter.providers.sendgrid.body import GROUP_UNSUBSCRIBE_TAG, _shared_fields
from newsletter.sending.journal import Row
from newsletter.sending.workers import recipient_of, recipients_of

ISSUE = REPO / "issues" / "2026-11-25-first-dispatch"
SECRET = b"test secret for unsubscribe links"

NAMES = ["Ada", "", "O'Brien", 'Say "hi"', "Tom & Jerry", "Zoë Ødegård", "😀 Smile", "Doe, John", "a;b",
         '"Quoted, already"', "<b>bold</b>", "back\\slash", "tab\there", "line\u2028sep", "Ünïcode & 'both'"]
ADDRESSES = ["plain{i}@example.com", "Mixed.Case{i}@Example.com", " padded{i}@example.com ", "plus+{i}@example.com",
             'we"ird{i}@example.com', "ünï{i}@example.org", "two{i}@at@example.com", "back\\slash{i}@example.com"]


# --- the reference ------------------------------------------------------------------------------


def reference_bodies(message: Message, recipients: list[Recipient]) -> tuple[tuple[tuple[str, ...], bytes], ...]:
    """What the body rules say, recipient by recipient, with dicts and ``json.dumps``."""
    fields = list(dict.fromkeys(message.html_personalizer.fields + message.text_personalizer.fields))

    def value(field: MergeField, recipient: Recipient) -> str:
        raw = recipient.values.get(field.name)
        if field.name == UNSUBSCRIBE_FIELD and raw == GROUP_UNSUBSCRIBE_TAG:
            return raw  # SendGrid's own tag, verbatim
        return field.render(raw)

    rows = [[value(field, recipient) for field in fields] for recipient in recipients]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(rows):  # one body per way the recipient's values agree
        groups.setdefault(tuple(row.index(v) for v in row), []).append(i)
    bodies = []
    for members in groups.values():
        keep: list[int] = []
        aliases: dict[str, str] = {}
        for j, field in enumerate(fields):
            same = [k for k in keep if all(rows[i][k] == rows[i][j] for i in members)]
            if same:
                aliases[field.token] = fields[same[0]].token
            else:
                keep.append(j)
        personalizations = []
        for i in members:
            recipient = recipients[i]
            to = {"email": recipient.email.strip()}
            if recipient.name:
                name = recipient.name
                if ("," in name or ";" in name) and not (len(name) > 1 and name[0] == name[-1] == '"'):
                    name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
                to["name"] = name
            personalization: dict = {"to": [to]}
            if keep:
                personalization["substitutions"] = {fields[j].token: rows[i][j] for j in keep}
            if message.unsubscribe_group is None:
                link = recipient.values.get(UNSUBSCRIBE_FIELD, "")
                targets = [link] if link.startswith("https://") else []
                if message.unsubscribe_mailto:
                    targets.append(f"mailto:{message.unsubscribe_mailto}?subject=unsubscribe%20"
                                   f"{quote(recipient.email, safe='')}")
                if targets:
                    headers = {"List-Unsubscribe": ", ".join(f"<{t}>" for t in targets)}
                    if targets[0].startswith("https://"):
                        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                    personalization["headers"] = headers
            personalizations.append(personalization)
        body = {"personalizations": personalizations, **_shared_fields(message, aliases)}
        bodies.append((tuple(recipients[i].key for i in members),
                       json.dumps(body, separators=(",", ":")).encode("ascii")))
    return tuple(bodies)


def reference_token(email: str, list_name: str = "example", secret: bytes = SECRET) -> str:
    """The token format (version 3): AES-SIV under an HKDF-SHA256 key whose info names the list, no
    associated data, the version byte in front, unpadded base64url."""
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
               info=b"newsletter unsubscribe token v3: AES-SIV key of the list " + list_name.encode("utf-8")
               ).derive(secret)
    data = b"\x03" + AESSIV(key).encrypt(email.encode("utf-8"), None)
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings():
    return load_settings(REPO)


@pytest.fixture(scope="module")
def message(settings) -> Message:
    return example_message(settings)


def every_flavour(message: Message) -> Message:
    """A message using a column with a fallback in all three flavours, and the address in a URL."""
    fields = (MergeField("NLMRG0001H", "subscriber.name", "there", "H"),
              MergeField("NLMRG0002H", UNSUBSCRIBE_FIELD, "", "H"),
              MergeField("NLMRG0003T", "subscriber.name", "there", "T"),
              MergeField("NLMRG0004U", "subscriber.email", "", "U"),
              MergeField("NLMRG0005H", "subscriber.city", "your town", "H"),
              MergeField("NLMRG0006T", "subscriber.city", "your town", "T"),
              MergeField("NLMRG0007U", "subscriber.city", "", "U"))
    return dataclasses.replace(
        message, fields=fields,
        html='<p>Hi NLMRG0001H from NLMRG0005H</p><a href="https://example.com/p?e=NLMRG0004U&c=NLMRG0007U">'
             '</a><a href="NLMRG0002H">unsubscribe</a>',
        text="Hi NLMRG0003T from NLMRG0006T\nhttps://example.com/p?e=NLMRG0004U")


def readers(count: int, seed: int, link: str = "mixed", list_name: str = "example") -> list[Recipient]:
    """Recipients with awkward names and addresses, some columns missing, links of every kind."""
    rnd = random.Random(seed)
    recipients = []
    for i in range(count):
        email = rnd.choice(ADDRESSES).format(i=i) if rnd.random() < 0.4 else f"reader{i}@example.com"
        name = rnd.choice(NAMES)
        kind = rnd.choice(["https", "https", "http", "none", "group"]) if link == "mixed" else link
        url = {"https": "https://example.com/u/" + reference_token(email, list_name) + "?a=1&b=2",
               "http": "http://example.com/u/" + reference_token(email, list_name), "none": "",
               "group": GROUP_UNSUBSCRIBE_TAG}[kind]
        columns = {"city": rnd.choice(["Paris", "", "Zürich", 'Quote"town', "A & B"])}
        if rnd.random() < 0.3:
            columns = {}
        values = subscriber_values(email, name, columns, url)
        if rnd.random() < 0.1:
            del values["subscriber.name"]
        recipients.append(Recipient(email, email.strip().lower(), name, values))
    return recipients


def variants(message: Message) -> dict[str, Message]:
    return {
        "https and mailto": message,
        "no mailto": dataclasses.replace(message, unsubscribe_mailto=""),
        "mailto needing escapes": dataclasses.replace(message, unsubscribe_mailto='un"sub@exämple.com'),
        "unsubscribe group": dataclasses.replace(message, unsubscribe_group=42, unsubscribe_mailto=""),
    }


# --- the bodies ------------------------------------------------------------------------------------


def test_the_reference_writes_the_documented_personalization(message):
    """The reference itself, on one plain reader, against the body written out by hand."""
    url = "https://example.com/u/" + reference_token("ada@example.com")
    ada = Recipient("ada@example.com", "ada@example.com", "Ada", subscriber_values("ada@example.com", "Ada", {}, url))
    ((keys, body),) = reference_bodies(message, [ada])
    personalization = json.loads(body)["personalizations"][0]
    assert keys == ("ada@example.com",)
    assert personalization["to"] == [{"email": "ada@example.com", "name": "Ada"}]
    assert set(personalization["substitutions"].values()) == {"Ada", url}  # each value once
    assert personalization["headers"] == {
        "List-Unsubscribe": f"<{url}>, <mailto:{message.unsubscribe_mailto}?subject=unsubscribe%20ada%40example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert body.startswith(b'{"personalizations":[{"to":[{"email":"ada@example.com","name":"Ada"}],"substitutions":')


@pytest.mark.parametrize("link", ["https", "http", "none", "group", "mixed"])
@pytest.mark.parametrize("flavours", ["issue", "every flavour"])
def test_encode_writes_the_reference_bytes(message, link, flavours):
    base = every_flavour(message) if flavours == "every flavour" else message
    for seed in range(12):
        batch = readers(random.Random(seed).choice([1, 2, 7, 60, 250]), seed, link)
        for variant, msg in variants(base).items():
            payload = encode(msg, batch)
            assert payload.keys == tuple(r.key for r in batch)
            assert payload.data == reference_bodies(msg, batch), (variant, seed)


def test_a_full_batch_of_plain_readers_is_one_body_with_each_value_once(message):
    batch = readers(1000, seed=5, link="https")
    batch = [r._replace(name=f"Reader {i}", values={**r.values, "subscriber.name": f"Reader {i}"})
             for i, r in enumerate(batch) if "@" in r.email and '"' not in r.email]
    payload = encode(message, batch)
    assert payload.data == reference_bodies(message, batch)
    ((keys, body),) = payload.data
    assert len(json.loads(body)["personalizations"]) == len(batch) == len(keys)


def test_names_that_escape_differently_in_html_go_in_a_body_of_their_own(message):
    batch = [Recipient(f"r{i}@example.com", f"r{i}@example.com", name,
                       subscriber_values(f"r{i}@example.com", name, {}, ""))
             for i, name in enumerate(["Ada", "Tom & Jerry", "Bob", "O'Brien"])]
    payload = encode(message, batch)
    assert [keys for keys, _ in payload.data] == [("r0@example.com", "r2@example.com"),
                                                   ("r1@example.com", "r3@example.com")]
    assert payload.data == reference_bodies(message, batch)


def test_mailto_only_unsubscribe_has_no_one_click_header(message):
    batch = readers(5, seed=1, link="none")
    for personalization in build_payload(message, batch)["personalizations"]:
        assert personalization["headers"]["List-Unsubscribe"].startswith(f"<mailto:{message.unsubscribe_mailto}?")
        assert "List-Unsubscribe-Post" not in personalization["headers"]


def test_the_group_unsubscribe_tag_reaches_sendgrid_verbatim(message):
    batch = readers(4, seed=2, link="group")
    grouped = dataclasses.replace(message, unsubscribe_group=42, unsubscribe_mailto="")
    body = build_payload(grouped, batch)
    for personalization in body["personalizations"]:
        assert GROUP_UNSUBSCRIBE_TAG in personalization["substitutions"].values()
        assert "headers" not in personalization
    assert encode(grouped, batch).data == reference_bodies(grouped, batch)


@pytest.mark.parametrize("bad", ["Eve\nBcc: x@example.org", "Eve\r", "Eve\x00", "=?utf-8?q?Eve=0ABcc:_x?="])
def test_a_line_break_in_one_name_refuses_that_recipient_naming_it(message, bad):
    batch = readers(6, seed=3, link="https")
    batch[4] = batch[4]._replace(name=bad)
    with pytest.raises(RejectedError) as caught:
        encode(message, batch)
    assert caught.value.errors == ((caught.value.errors[0][0], "personalizations.4.to.0"),)
    assert "line break" in caught.value.errors[0][0]


def test_an_address_twice_in_a_batch_is_a_batching_error(message):
    batch = readers(3, seed=4, link="https")
    batch.append(batch[1]._replace(email=" " + batch[1].email.upper()))
    with pytest.raises(ValueError, match="appears twice"):
        encode(message, batch)


# --- the recipients and their tokens -------------------------------------------------------------


def test_tokens_made_a_batch_at_a_time_are_the_same_tokens(settings):
    links = UnsubscribeLinks(settings, "example", SECRET)
    emails = [a.format(i=i) for i, a in enumerate(ADDRESSES)] + ["", "😀@example.com", "x" * 300 + "@example.com"]
    made = links.many(emails)
    assert made == [links(email) for email in emails]
    for email, link in zip(emails, made, strict=True):
        token = reference_token(email)
        assert link == settings.unsubscribe_url.replace("{token}", token), email
        if email:  # (a token for no address is too short to verify, as it always was)
            assert verify_token(SECRET, "example", token) == email


def test_recipients_of_a_batch_are_those_of_each_row(settings):
    links = UnsubscribeLinks(settings, "example", SECRET)
    rnd = random.Random(7)
    rows = [Row(i, f"k{i}", rnd.choice(ADDRESSES).format(i=i), rnd.choice(NAMES),
                rnd.choice(["", None, json.dumps({"city": "Zürich"}), json.dumps({"city": None, "plan": "pro"}),
                            json.dumps({})]), 0)
            for i in range(300)]
    recipients, refused = recipients_of(rows, links)
    assert refused == []
    assert recipients == [recipient_of(row, links) for row in rows]
    assert recipients_of([], links) == ([], [])


def test_a_row_with_a_line_break_is_refused_alone_at_its_position(settings):
    links = UnsubscribeLinks(settings, "example", SECRET)
    rows = [Row(i, f"r{i}@example.com", f"r{i}@example.com", f"Reader {i}", "", 0) for i in range(5)]
    rows[1] = rows[1]._replace(name="Eve\r\nBcc: all@example.org")
    rows[3] = rows[3]._replace(email="x@example.com\nBcc: all@example.org")
    recipients, refused = recipients_of(rows, links)
    assert [r.email for r in recipients] == ["r0@example.com", "r2@example.com", "r4@example.com"]
    assert [position for position, _ in refused] == [1, 3]
    assert "subscriber name contains a line break" in refused[0][1]
    assert "subscriber email contains a line break" in refused[1][1]


def test_fields_that_are_not_json_fail_as_they_would_row_by_row(settings):
    links = UnsubscribeLinks(settings, "example", SECRET)
    rows = [Row(1, "a@example.com", "a@example.com", "A", '{"city": "Paris"}', 0),
            Row(2, "b@example.com", "b@example.com", "B", '{"city": ', 0)]
    with pytest.raises(ValueError):
        recipients_of(rows, links)
    with pytest.raises(NewsletterError):
        recipient_of(Row(3, "c@example.com", "c@example.com", "C\n", "", 0), links)


def test_each_request_carries_its_run_and_batch_in_custom_args_and_each_part_its_number(message):
    """Issue 20: the labels the send loop gives a request (its run and batch) travel in the body's custom_args,
    beside the issue and list; a batch sent as several bodies numbers its parts. Every body stays valid."""
    from sendgrid_standin import load_validator

    from newsletter.providers.base import request_labels
    from newsletter.providers.sendgrid.body import labelled

    validator = load_validator()
    bodies = encode(every_flavour(message), readers(40, seed=3)).data
    assert len(bodies) > 1  # names with "&" need a body of their own
    for part, (_, body) in enumerate(bodies, 1):
        sent = json.loads(labelled(body, request_labels("0123456789abcdef", "7-3"), part, len(bodies)))
        assert not list(validator.iter_errors(sent))
        assert sent["custom_args"] == {**json.loads(body)["custom_args"], "newsletter_run": "0123456789abcdef",
                                       "newsletter_batch": f"7-3#{part}/{len(bodies)}"}
    [(_, single)] = encode(message, readers(3, seed=4, link="https")).data
    assert json.loads(labelled(single, request_labels("r", "7-4"), 1, 1))["custom_args"]["newsletter_batch"] == "7-4"
    assert labelled(single, (), 1, 1) == single  # a request without labels (a test send) is as it was
