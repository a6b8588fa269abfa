"""DKIM (RFC 6376): each configured selector publishes a key, RSA keys of at least 1024 bits.

Gmail and Yahoo (2024) require DKIM for bulk senders, and DMARC passes on
DKIM only when the signing domain (``d=``) aligns with the From domain.
SendGrid signs with ``d=`` your domain only after domain authentication,
which publishes ``s1._domainkey`` and ``s2._domainkey`` as CNAMEs to keys
SendGrid rotates; without them it signs as sendgrid.net, which never aligns.
Keys below 1024 bits are ignored by receivers; 2048 is what they recommend.
Ed25519 keys (RFC 8463) are valid DKIM, but Gmail, Yahoo and Microsoft do not
verify them, so a setup that signs with Ed25519 alone is noted, and counts as
unsigned for those providers' rules.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found
from .resolver import Lookup

MIN_RSA_BITS = 1024
RECOMMENDED_RSA_BITS = 2048


@dataclass(frozen=True)
class DkimKey:
    """What a selector's record says: its key type and size, or why it is unusable."""

    selector: str
    name: str
    kind: str = ""  # rsa | ed25519
    bits: int = 0
    problem: str = ""  # why receivers cannot verify with it

    @property
    def usable(self) -> bool:
        return not self.problem and (self.kind != "rsa" or self.bits >= MIN_RSA_BITS)


def tags(record: str) -> dict[str, str]:
    """``v=DKIM1; k=rsa; p=...`` -> {"v": "DKIM1", "k": "rsa", "p": "..."} (names lowercased)."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found.setdefault(name.strip().lower(), "".join(value.split()))
    return found


def read_key(selector: str, name: str, record: str) -> DkimKey:
    fields = tags(record)
    kind = fields.get("k", "rsa").lower()
    data = fields.get("p")
    if data is None:
        return DkimKey(selector, name, kind, problem="the record has no p= (public key) tag")
    if not data:
        return DkimKey(selector, name, kind, problem="the key is revoked (empty p=)")
    try:
        der = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return DkimKey(selector, name, kind, problem="p= is not valid base64")
    if kind == "ed25519":
        return DkimKey(selector, name, kind, bits=256) if len(der) == 32 else \
            DkimKey(selector, name, kind, problem="p= is not a 32-byte Ed25519 key")
    try:
        key = load_der_public_key(der)
    except ValueError:
        return DkimKey(selector, name, kind, problem="p= is not a public key (SubjectPublicKeyInfo, RFC 6376 §3.6.1)")
    if isinstance(key, rsa.RSAPublicKey):
        return DkimKey(selector, name, "rsa", key.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return DkimKey(selector, name, "ed25519", 256)
    return DkimKey(selector, name, kind, problem=f"k={kind} but the key is a {type(key).__name__}")


def selector_keys(ctx: DoctorContext) -> list[tuple[str, DkimKey | Lookup]]:
    """(selector, DkimKey or the failed/empty Lookup) for each configured selector."""
    keys: list[tuple[str, DkimKey | Lookup]] = []
    for selector in ctx.dkim_selectors:
        name = f"{selector}._domainkey.{ctx.dkim_domain}"
        lookup = ctx.dns.txt(name)
        records = [r for r in lookup.records if "p=" in r.replace(" ", "")]
        keys.append((selector, read_key(selector, name, records[0]) if records else lookup))
    return keys


def signing_domain(ctx: DoctorContext) -> str:
    """The d= domain the provider will sign with: the configured domain when a selector has a usable key;
    for SendGrid without one, sendgrid.net; "" when nothing signs."""
    if any(isinstance(key, DkimKey) and key.usable for _, key in selector_keys(ctx)):
        return ctx.dkim_domain
    return ctx.expects.fallback_domain


def verifiable_by_all(ctx: DoctorContext) -> bool:
    """Some configured selector holds an RSA key receivers accept; an Ed25519 key alone (RFC 8463) is not
    verified by Gmail, Yahoo or Microsoft. SendGrid without selectors signs as sendgrid.net with RSA."""
    keys = [key for _, key in selector_keys(ctx) if isinstance(key, DkimKey) and key.usable]
    if keys:
        return any(key.kind == "rsa" for key in keys)
    return bool(ctx.expects.fallback_domain)  # the provider's own signature (SendGrid's is RSA)


def check_dkim(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    if not ctx.dkim_selectors:
        yield found(WARNING, "dkim-no-selector", "no DKIM selector is configured, so the doctor cannot check that "
                    f"your {ctx.kind.title} server signs mail; Gmail and Yahoo require DKIM for bulk senders",
                    ctx.config_path, fix="add [doctor] dkim_selectors = [\"<selector>\"] (the s= of your "
                                         "DKIM-Signature header) to newsletter.toml",
                    rule="RFC 6376 §3.6.2.1 (keys are found by selector); Gmail and Yahoo bulk-sender rules")
        return
    expects, title = ctx.expects, ctx.kind.title
    keys: list[DkimKey] = []
    for selector, key in selector_keys(ctx):
        name = f"{selector}._domainkey.{ctx.dkim_domain}"
        if not isinstance(key, DkimKey):
            if key.failed:
                yield dns_failure(key, f"DKIM selector {selector}")
                continue
            fix = (f"authenticate {ctx.dkim_domain} {expects.domain_setup} and publish "
                   f"the CNAME records it shows, {selector}._domainkey among them" if expects.domain_setup else
                   f"publish the DKIM public key of selector {selector} as a TXT record at {name}")
            yield found(ERROR, "dkim-missing", f"DKIM selector {selector} has no key: {key.describe()}"
                        + (f"; {title} then signs as {expects.fallback_domain}, which does not align with your "
                           "domain" if expects.fallback_domain else ""), name, fix=fix,
                        rule="RFC 6376 §6.1.2 (no key record: the signature cannot be verified)")
            continue
        keys.append(key)
        yield from _key_findings(key, name, expects.key_length_setup)
    usable = [key for key in keys if key.usable]
    if usable and all(key.kind == "ed25519" for key in usable):
        yield found(WARNING, "dkim-ed25519-only", "every DKIM key of this setup is Ed25519: Gmail, Yahoo and "
                    "Microsoft do not verify Ed25519 signatures, so there DKIM fails and DMARC rests on SPF alone",
                    f"{usable[0].selector}._domainkey.{ctx.dkim_domain}",
                    fix="sign with an RSA key (2048 bits) as well as the Ed25519 one: add its selector",
                    rule="RFC 8463 §6 (transition: sign with RSA too); Ed25519 verification by provider: "
                         "https://uriports.com/blog/dkim-ed25519-adoption/")
    rotation = expects.key_rotation_domain
    if rotation:
        for selector in ctx.dkim_selectors:
            lookup = ctx.dns.txt(f"{selector}._domainkey.{ctx.dkim_domain}")
            if lookup.found and not any(c.endswith("." + rotation) for c in lookup.cnames):
                yield found(INFO, f"dkim-not-{ctx.kind.name}-cname", f"{selector}._domainkey.{ctx.dkim_domain} is "
                            f"not a CNAME to {rotation}, so {title} cannot rotate its key (automated security off)",
                            lookup.name, rule=f"{title} domain authentication (automated security)")


def _key_findings(key: DkimKey, name: str, key_length_setup: str) -> Iterator[DoctorFinding]:
    selector = key.selector
    if key.problem:
        yield found(ERROR, "dkim-invalid", f"DKIM selector {selector}: {key.problem}", name,
                    fix="publish the selector's current public key",
                    rule="RFC 6376 §3.6.1 (the key record's p= tag)")
    elif key.kind == "rsa" and key.bits < MIN_RSA_BITS:
        yield found(ERROR, "dkim-weak-key", f"DKIM selector {selector} has a {key.bits}-bit RSA key; "
                    f"receivers ignore keys under {MIN_RSA_BITS} bits, so the signature fails", name,
                    fix=f"generate a {RECOMMENDED_RSA_BITS}-bit key and publish it",
                    rule="RFC 8301 §3.2 (verifiers MUST NOT consider keys under 1024 bits valid)")
    elif key.kind == "rsa" and key.bits < RECOMMENDED_RSA_BITS:
        yield found(WARNING, "dkim-short-key", f"DKIM selector {selector} has a {key.bits}-bit RSA key; "
                    f"{RECOMMENDED_RSA_BITS} bits is recommended", name,
                    fix=f"rotate to a {RECOMMENDED_RSA_BITS}-bit key"
                        + (f" ({key_length_setup})" if key_length_setup else ""),
                    rule="RFC 8301 §3.2 (signers SHOULD use 2048 bits)")
    elif key.kind == "ed25519":
        yield found(INFO, "dkim-ed25519", f"DKIM selector {selector}: Ed25519 key; Gmail, Yahoo and Microsoft do "
                    "not verify Ed25519 signatures, so mail needs an RSA signature too", name,
                    rule="RFC 8463 §6 (transition: sign with RSA too)")
    else:
        yield found(INFO, "dkim", f"DKIM selector {selector}: {key.kind} key, {key.bits} bits", name,
                    rule="RFC 6376 §3.6.1; RFC 8301 §3.2")
