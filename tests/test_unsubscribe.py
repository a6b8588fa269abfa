"""Unsubscribe links: signed per list and address, verified before anyone is unsubscribed."""

from __future__ import annotations

import csv
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.compose.unsubscribe import make_token, verify_token
from newsletter.errors import NewsletterError

SECRET = b"test-secret-for-unsubscribe-links"  # conftest exports it as NEWSLETTER_UNSUBSCRIBE_SECRET


def status_of(root, email: str) -> str:
    with open(root / "subscribers" / "example.csv", encoding="utf-8") as f:
        return next(row["status"] for row in csv.DictReader(f) if row["email"] == email)


def test_token_round_trip_and_tampering():
    token = make_token(SECRET, "example", "ada@example.com")
    assert verify_token(SECRET, "example", token) == "ada@example.com"
    with pytest.raises(NewsletterError, match="not valid for list 'other'"):
        verify_token(SECRET, "other", token)
    forged = make_token(b"someone else's secret", "example", "ada@example.com")
    with pytest.raises(NewsletterError):
        verify_token(SECRET, "example", forged)
    with pytest.raises(NewsletterError, match="malformed"):
        verify_token(SECRET, "example", "not-a-token")


def test_the_link_in_a_sent_sample_unsubscribes_its_reader(newsletter_root):
    runner = CliRunner()
    assert runner.invoke(main, ["send", "issues/2026-11-25-first-dispatch", "--list", "example",
                                "--dry-run"]).exit_code == 0
    sample = (newsletter_root / "outbox" / "2026-11-25-first-dispatch" / "sample-1.eml").read_text()
    link = next(line.split("<", 1)[1].split(">", 1)[0] for line in sample.splitlines()
                if line.startswith("List-Unsubscribe:"))
    assert link.startswith("https://newsletter.example.com/unsubscribe/")  # the route of `newsletter serve`
    token = urlsplit(link).path.rsplit("/", 1)[1]
    assert status_of(newsletter_root, "ada@example.com") == "subscribed"
    result = runner.invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", token])
    assert result.exit_code == 0, result.output
    assert status_of(newsletter_root, "ada@example.com") == "unsubscribed"


def test_a_forged_token_changes_nothing(newsletter_root):
    forged = make_token(b"guessed", "example", "grace@example.org")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", forged])
    assert result.exit_code == 2 and "not valid" in result.output
    assert status_of(newsletter_root, "grace@example.org") == "subscribed"


def test_without_the_secret_the_error_names_the_variable(newsletter_root, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET")
    token = make_token(SECRET, "example", "ada@example.com")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", token])
    assert result.exit_code == 2 and "NEWSLETTER_UNSUBSCRIBE_SECRET" in result.output
    assert "test-secret" not in result.output


# -- what a token reveals, and the tokens sent before it was encrypted --------------------------------


def decodings(token: str) -> list[bytes]:
    """Every way a curious reader might decode the token: base64 (either alphabet) from each
    offset, hex, and the text itself."""
    import base64
    import binascii

    found = [token.encode()]
    for offset in range(4):
        part = token[offset:]
        part = part[: len(part) - len(part) % 4]
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                found.append(decode(part))
            except (binascii.Error, ValueError):
                pass
    try:
        found.append(binascii.unhexlify(token))
    except (binascii.Error, ValueError):
        pass
    return found


def first_format_token(secret: bytes, list_name: str, email: str) -> str:
    """A token as the links sent until 2026-11 carry it: base64url(address) "." HMAC-SHA256."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signed = (list_name + "\n" + email).encode()
    return f"{b64(email.encode())}.{b64(hmac.digest(secret, signed, hashlib.sha256))}"


def test_a_token_shows_no_address_to_whoever_reads_the_link():
    for email in ("ada@example.com", "grace.hopper@example.org"):
        token = make_token(SECRET, "example", email)
        assert verify_token(SECRET, "example", token) == email
        local = email.split("@")[0].encode()
        for decoded in decodings(token):
            assert local not in decoded and b"example" not in decoded
        assert len(token) < 70  # shorter than the signed tokens were
        assert all(c.isalnum() or c in "-_" for c in token)  # URL-safe as is


def test_forged_truncated_and_other_list_tokens_are_refused():
    token = make_token(SECRET, "example", "ada@example.com")
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (flipped, token[:-2], token + "AA", make_token(b"another secret", "example", "ada@example.com")):
        with pytest.raises(NewsletterError):
            verify_token(SECRET, "example", bad)
    with pytest.raises(NewsletterError, match="not valid for list 'other'"):
        verify_token(SECRET, "other", token)
    with pytest.raises(NewsletterError, match="malformed"):
        verify_token(SECRET, "example", "")


def test_tokens_sent_before_encryption_still_verify():
    old = first_format_token(SECRET, "example", "ada@example.com")
    assert verify_token(SECRET, "example", old) == "ada@example.com"
    with pytest.raises(NewsletterError, match="not valid for list 'other'"):
        verify_token(SECRET, "other", old)
    forged = first_format_token(SECRET, "example", "ada@example.com").replace("YWRh", "Z3JhY2", 1)
    with pytest.raises(NewsletterError):
        verify_token(SECRET, "example", forged)


def test_an_old_link_still_unsubscribes_its_reader(newsletter_root):
    old = first_format_token(SECRET, "example", "ada@example.com")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", old])
    assert result.exit_code == 0, result.output
    assert status_of(newsletter_root, "ada@example.com") == "unsubscribed"


# -- the encrypted tokens mailed until 2026-12 (version 2: one key, the list as associated data) ----------


def second_format_token(secret: bytes, list_name: str, email: str) -> str:
    """A token as the links mailed from 2026-11 to 2026-12 carry it, made as that version made them."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
               info=b"newsletter unsubscribe token v2: AES-SIV key").derive(secret)
    data = b"\x02" + AESSIV(key).encrypt(email.encode(), [b"\x02", list_name.encode()])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_encrypted_tokens_already_mailed_still_verify():
    mailed = "Alu0BkXdTXId0RGVVhy2n_noQwXIQg-agkrAc4aqH-8"  # a link of an issue sent in 2026-11, as it was
    assert second_format_token(SECRET, "example", "ada@example.com") == mailed
    assert verify_token(SECRET, "example", mailed) == "ada@example.com"
    assert make_token(SECRET, "example", "ada@example.com") != mailed  # tokens made now are of the new format
    with pytest.raises(NewsletterError, match="not valid for list 'other'"):
        verify_token(SECRET, "other", mailed)
    with pytest.raises(NewsletterError):
        verify_token(b"another secret", "example", mailed)
    import base64

    relabelled = b"\x03" + base64.urlsafe_b64decode(mailed + "=")[1:]  # its body under today's version byte
    with pytest.raises(NewsletterError, match="not valid"):
        verify_token(SECRET, "example", base64.urlsafe_b64encode(relabelled).decode().rstrip("="))


def test_a_token_of_one_list_is_refused_for_a_list_of_a_similar_name():
    token = make_token(SECRET, "news", "ada@example.com")
    for other in ("news2", "new", "News", "news "):
        with pytest.raises(NewsletterError, match="not valid"):
            verify_token(SECRET, other, token)


def test_an_already_mailed_encrypted_link_unsubscribes_its_reader(newsletter_root):
    mailed = second_format_token(SECRET, "example", "ada@example.com")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", mailed])
    assert result.exit_code == 0, result.output
    assert status_of(newsletter_root, "ada@example.com") == "unsubscribed"
