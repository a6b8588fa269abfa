"""What differs between providers is declared by each provider's kind, and the rest of the package
acts on it: the sign-up page, unsubscribe links, the checks. (Which modules may name a provider at
all: test_sending_provider_neutral.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from newsletter_helpers import run, set_option
from serve_helpers import start_world

from newsletter.compose.build import build_issue, make_message
from newsletter.compose.unsubscribe import unsubscribe_url
from newsletter.config import load_settings
from newsletter.providers import registry

ISSUE = "issues/2026-11-25-first-dispatch"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-unsubscribe-links")
        running = start_world(tmp_path_factory.mktemp("contract"), requests_per_ip="1000")
        yield running
        running.stop()


def test_a_sign_up_the_provider_could_never_mail_is_refused_on_the_page(world):
    """The service mails through SMTP, which carries ASCII addresses only (no SMTPUTF8): an address with
    other letters is refused with a page saying so, and nothing is recorded or mailed."""
    assert world.settings.provider == "smtp" and not registry.capabilities("smtp").unicode_addresses
    before = len(world.mail.received)
    with httpx.Client(base_url=world.url, timeout=10) as client:
        refused = client.post("/subscribe/example", data={"email": "zoë@example.org", "name": "", "website": ""})
        accepted = client.post("/subscribe/example", data={"email": "zoe@example.org", "name": "", "website": ""})
    assert refused.status_code == 400 and "Please use another address" in refused.text
    assert accepted.status_code == 200 and "Please use another address" not in accepted.text
    assert not [e for e in world.store.unsynced("example") if "zoë" in e.email]
    assert len(world.mail.received) == before + 1  # zoe's confirmation only
    assert registry.capabilities("sendgrid").unicode_addresses  # SendGrid's page takes the address


def test_a_providers_unsubscribe_group_replaces_the_signed_link(newsletter_root: Path):
    """With SendGrid and an unsubscribe group, every recipient's link is SendGrid's own tag and the
    message carries the group (no mailto); SMTP has no groups, so the same settings sign a link."""
    set_option(newsletter_root, "sendgrid", "unsubscribe_group = 42")
    settings = load_settings(newsletter_root / "newsletter.toml")
    secret = b"s" * 32
    assert unsubscribe_url(settings, "example", "ada@example.com", secret, registry.kind("sendgrid")) == \
        registry.kind("sendgrid").group_unsubscribe_link
    signed = unsubscribe_url(settings, "example", "ada@example.com", secret, registry.kind("smtp"))
    assert signed.startswith("https://newsletter.example.com/unsubscribe/")
    built = build_issue(settings, newsletter_root / ISSUE)
    grouped, plain = (make_message(settings, built, "example", registry.kind(name)) for name in ("sendgrid", "smtp"))
    assert (grouped.unsubscribe_group, grouped.unsubscribe_mailto) == (42, "")
    assert plain.unsubscribe_group is None and plain.unsubscribe_mailto == settings.unsubscribe_mailto
    assert grouped.categories == ("newsletter",) and plain.categories == ()


@pytest.mark.parametrize("group", [None, 42])
def test_the_unsubscribe_check_accepts_a_providers_group_instead_of_a_link(newsletter_root: Path, group):
    text = (newsletter_root / "newsletter.toml").read_text(encoding="utf-8")
    (newsletter_root / "newsletter.toml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("unsubscribe_url")) + "\n",
        encoding="utf-8")
    if group is not None:
        set_option(newsletter_root, "sendgrid", f"unsubscribe_group = {group}")
    result = run("check", ISSUE, "--format", "json")
    findings = {f["code"]: f for f in json.loads(result.output)["findings"]}
    if group is None:
        assert result.exit_code == 1
        assert "or sendgrid.unsubscribe_group" in findings["no-unsubscribe-url"]["fix"]
    else:
        assert "no-unsubscribe-url" not in findings
