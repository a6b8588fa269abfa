"""Address keys: the fast path must agree with email-validator on every address, valid or not.

A send de-duplicates and journals recipients by key, so a key that differed
from email-validator's normalization (lowercased) would mail someone twice
or skip someone. These tests compare the two on addresses chosen to sit on
every edge of the fast path, and on random strings built from the
characters that matter.
"""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import NewsletterError
from newsletter.lists import key_or_problem, normalize_key
from newsletter.lists.address_keys import fast_key

TRICKY = [
    # plain, and case in every place
    "ada@example.com", "Ada@EXAMPLE.com", "ADA@Example.Com", "a@b.co", "a.b.c@d.e.f.org",
    # RFC 2142 role names email-validator lowercases itself
    "Postmaster@Example.com", "INFO@example.com",
    # every atext character
    "a+tag@example.com", "o'brien@example.com", "{x}|~`!#$%&*/=?^_-@example.com", "-@example.com",
    # dots in the wrong places
    ".a@example.com", "a.@example.com", "a..b@example.com", "a@.example.com", "a@example.com.",
    "a@example..com",
    # hyphens in the domain: leading, trailing, doubled, Punycode, reserved "ab--" labels
    "a@-example.com", "a@example-.com", "a@ex-ample.com", "a@ex--ample.com", "a@x--y.com",
    "a@xn--bcher-kva.ch", "a@XN--BCHER-KVA.CH", "a@ab--cd.com", "a@example.xn--p1ai",
    "a@bücher.ch", "a@BÜCHER.ch", "a@пример.рф", "a@例え.テスト",
    # top-level domains
    "a@example", "a@example.c0m", "a@example.co1", "a@123.com", "a@1.2.3.4", "a@example.museum",
    "a@example.test", "a@example.TEST", "a@sub.example.local", "a@localhost", "a@x.localhost",
    "a@x.onion", "a@x.arpa", "a@x.invalid", "a@x.testing", "a@x.locale",
    # not an address at all
    "", "a", "@example.com", "a@", "a@@example.com", "a@b@example.com", "a b@example.com",
    "a@exa mple.com", "a@example.com>", "Ada <ada@example.com>", '"a b"@example.com', '"ada"@example.com',
    "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@example_ok.com", "a\u200b@example.com",
    "a@example.com\u200b", "a\n@example.com", "a@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "a\uff20example.com",
    # internationalized local parts (SMTPUTF8), including ones NFC changes
    "ñoño@example.com", "Ñoño@example.com", "u\u0308ser@example.com", "üser@example.com", "用户@例子.广告",
    # lengths: 63 and 64 character labels, 254 and 255 character addresses, long local parts
    "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com", "a" * 64 + "@example.com", "a" * 65 + "@example.com",
    "a@" + ".".join(["c" * 63] * 3) + "." + "d" * 56 + ".com",
    "a" * 64 + "@" + ".".join(["c" * 60] * 3) + ".co",
    "a" * 64 + "@" + ".".join(["c" * 60] * 3) + ".com",
    "a" * 64 + "@" + ".".join(["c" * 60] * 3) + ".comm",
]


def reference_key(email: str) -> str:
    """email-validator's own verdict and normalization, lowercased: what a key must equal."""
    try:
        valid = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        return ""
    return valid.normalized.lower()


@pytest.mark.parametrize("email", TRICKY)
def test_key_equals_email_validator_on_tricky_addresses(email: str) -> None:
    assert key_or_problem(email)[0] == reference_key(email)


def test_fast_path_only_answers_what_email_validator_agrees_with() -> None:
    answered = [e for e in TRICKY if fast_key(e) is not None]
    assert len(answered) > 15  # the fast path is really used
    for email in answered:
        assert fast_key(email) == reference_key(email), email


def test_key_equals_email_validator_on_random_addresses() -> None:
    rng = random.Random(20261125)
    local_pieces = ["a", "Z", "0", "ada", "O'b", "+tag", ".", "..", "-", "_", "ü", "é", " ", '"', "\u0308", "@"]
    labels = ["a", "Z", "0", "ab", "x-y", "-a", "a-", "xn--bcher-kva", "xn--zz", "ab--c", "a--b", "com", "COM",
              "test", "local", "onion", "c0", "1", "y" * 63, "y" * 64, "ü", "\uff45", "", "_"]
    good_local, good_labels = local_pieces[:6], labels[:5] + labels[11:13] + labels[18:20]
    fast = 0
    for n in range(8000):
        pick_local, pick_label = (rng.choice, rng.choice) if n % 2 else (
            lambda _: rng.choice(good_local), lambda _: rng.choice(good_labels))
        local = "".join(pick_local(local_pieces) for _ in range(rng.randint(1, 4)))
        domain = ".".join(pick_label(labels) for _ in range(rng.randint(1, 5)))
        email = f"{local}@{domain}"
        fast += fast_key(email) is not None
        assert key_or_problem(email)[0] == reference_key(email), email
    assert fast > 1000  # a good share of the random addresses took the fast path


def test_key_lowercases_the_local_part_too() -> None:
    assert normalize_key("Ada.Lovelace@Example.COM") == "ada.lovelace@example.com"
    assert normalize_key("  ada@example.com  ") == "ada@example.com"
    assert normalize_key("ÜSER@BÜCHER.ch") == normalize_key("üser@xn--bcher-kva.ch") == "üser@bücher.ch"


def test_invalid_address_raises_a_newsletter_error_naming_it() -> None:
    with pytest.raises(NewsletterError) as caught:
        normalize_key("ada@@example.com")
    assert "'ada@@example.com' is not a valid email address" in str(caught.value)
