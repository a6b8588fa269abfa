"""The big mailbox providers: which recipient domains are theirs, and their published rules for senders.

Each rule names what it needs in the terms of ``Authentication``, from how
many recipients a day it applies (counted at the provider's own mailbox
domains, the scope its rule states), what the provider does with mail that
fails it, and where the provider publishes it. ``provider_findings`` judges
a list's recipients, counted per provider by ``audience``, against them.
"""

from __future__ import annotations

from dataclasses import dataclass

# the groups live in lists/: the click links and the subscriber service name them too
from ..lists.domain_groups import APPLE, GMAIL, GMX, MICROSOFT, YAHOO, ProviderGroup
from .authentication import Authentication
from .findings import ERROR, INFO, WARNING, DoctorFinding, found

# what a rule may need -> (how the finding says it, the fix)
NEEDS = {
    "spf_or_dkim": ("SPF or DKIM to pass", "publish SPF authorizing your provider, or DKIM (see the findings above)"),
    "spf": ("SPF to pass", "publish an SPF record that authorizes your provider (see the SPF findings)"),
    "dkim": ("a DKIM signature it verifies (RSA)", "sign with an RSA DKIM key of your domain (see the DKIM "
                                                   "findings)"),
    "dmarc": ("a DMARC record (p=none at least)", "publish _dmarc.<your domain>: v=DMARC1; p=none; rua=mailto:..."),
    "dmarc_pass": ("DMARC to pass (SPF or DKIM aligned with the From domain)", "sign with d=<your From domain> "
                                                                              "(see the DMARC findings)"),
    "dkim_aligned": ("a DKIM signature aligned with the From domain", "sign with a DKIM key of your From domain "
                                                                     "(d= aligned, relaxed at least)"),
    "one_click": ("one-click unsubscribe (RFC 8058)", "set newsletter.unsubscribe_url to newsletter serve's "
                                                      "/unsubscribe/{token} (or a provider's unsubscribe group)"),
}


def satisfied(need: str, auth: Authentication) -> bool:
    return {"spf_or_dkim": auth.spf or auth.dkim, "spf": auth.spf, "dkim": auth.dkim, "dmarc": auth.dmarc,
            "dmarc_pass": auth.dmarc_pass, "dkim_aligned": auth.dkim and auth.dkim_aligned,
            "one_click": auth.one_click}[need]


@dataclass(frozen=True)
class ProviderRule:
    group: ProviderGroup
    code: str
    title: str
    needs: tuple[str, ...]
    threshold: int  # recipients a day at the provider's own domains from which it applies (0: any)
    consequence: str
    source: str
    severity: str = ERROR  # when it applies and fails; below the threshold a failure is a warning
    hosted_too: bool = False  # also counts domains the provider hosts (found by MX)


GMAIL_SOURCE = ("Gmail email sender guidelines, https://support.google.com/a/answer/81126; enforcement FAQ, "
                "https://support.google.com/a/answer/14229414")
YAHOO_SOURCE = "Yahoo Sender Hub best practices, https://senders.yahooinc.com/best-practices/"
RULES = (
    ProviderRule(GMAIL, "provider-gmail-all-senders", "Gmail's rule for all senders", ("spf_or_dkim",), 0,
                 "Gmail defers or rejects such mail (enforcement ramped up from November 2025)", GMAIL_SOURCE),
    ProviderRule(GMAIL, "provider-gmail-bulk", "Gmail's bulk-sender rule (5,000 or more a day to Gmail "
                 "accounts)", ("spf", "dkim", "dmarc", "dmarc_pass", "one_click"), 5000,
                 "since November 2025 Gmail rejects such mail (4.7.x/5.7.x) rather than filing it as spam",
                 GMAIL_SOURCE),
    ProviderRule(MICROSOFT, "provider-outlook-high-volume", "Outlook.com's rule for high-volume senders (over "
                 "5,000 a day)", ("spf", "dkim", "dmarc", "dmarc_pass"), 5001,
                 "Outlook.com rejects such mail with 550 5.7.515 (since 2025-05-05)",
                 "Microsoft, Outlook's new requirements for high-volume senders (2025-04-02, rejection from "
                 "2025-05-05), https://techcommunity.microsoft.com/blog/microsoftdefenderforoffice365blog/"
                 "strengthening-email-ecosystem-outlook%E2%80%99s-new-requirements-for-high%E2%80%90volume-"
                 "senders/4399730"),
    ProviderRule(YAHOO, "provider-yahoo-all-senders", "Yahoo's rule for all senders", ("spf_or_dkim",), 0,
                 "Yahoo and AOL defer or reject such mail", YAHOO_SOURCE),
    ProviderRule(YAHOO, "provider-yahoo-bulk", "Yahoo's bulk-sender rule (Yahoo names no figure; the doctor "
                 "takes Gmail's 5,000 a day)", ("spf", "dkim", "dmarc", "dmarc_pass", "one_click"), 5000,
                 "Yahoo and AOL defer or reject such mail", YAHOO_SOURCE),
    ProviderRule(APPLE, "provider-apple-authentication", "iCloud Mail's bulk-sender practice", ("spf", "dkim"), 0,
                 "iCloud Mail filters on it (Apple publishes no threshold)",
                 "iCloud Mail postmaster information, https://support.apple.com/en-us/102322", WARNING,
                 hosted_too=True),
    ProviderRule(GMX, "provider-gmx-dkim", "GMX's and WEB.DE's DKIM rule", ("dkim_aligned",), 0,
                 "GMX and WEB.DE require an aligned DKIM signature of every sender (SPF alone is not enough)",
                 "GMX postmaster best practices, https://postmaster.gmx.net/en/best-practices; WEB.DE requirements, "
                 "https://postmaster.web.de/en/requirements-and-recommendations", hosted_too=True),
)


@dataclass(frozen=True)
class GroupCount:
    """A provider's share of a list: at its own mailbox domains, and at domains it hosts (by MX)."""

    name: str
    own: int = 0
    hosted: int = 0

    @property
    def recipients(self) -> int:
        return self.own + self.hosted


def failed_rules(counts: dict[str, GroupCount], auth: Authentication) -> dict[str, list[ProviderRule]]:
    """Provider name -> the rules (that concern some recipient) the setup fails."""
    failing: dict[str, list[ProviderRule]] = {}
    for rule in RULES:
        share = counts.get(rule.group.name, GroupCount(rule.group.name))
        if (share.recipients if rule.hosted_too else share.own) and not all(satisfied(n, auth) for n in rule.needs):
            failing.setdefault(rule.group.name, []).append(rule)
    return failing


def provider_findings(counts: dict[str, GroupCount], auth: Authentication, list_name: str,
                      where: str) -> list[DoctorFinding]:
    """A finding for each rule of a provider that gets some of the list's recipients and whose rule fails:
    an error once the rule applies, a warning below its threshold (providers count all mail from your domain
    in a day, not only this list)."""
    if not auth.checked:
        return [found(INFO, "provider-rules-not-checked", f"the mailbox providers' rules were not checked for list "
                      f"'{list_name}': {auth.reason or 'the DNS checks did not finish'}", where,
                      rule="the providers' rules need the DNS checks' answers")]
    findings: list[DoctorFinding] = []
    for name, rules in failed_rules(counts, auth).items():
        share = counts[name]
        for rule in rules:
            count = share.recipients if rule.hosted_too else share.own
            missing = [n for n in rule.needs if not satisfied(n, auth)]
            applies = count >= max(rule.threshold, 1)
            scope = f"{count:,} recipient{'s' * (count != 1)} of list '{list_name}' at {name}"
            when = "" if applies else (f"; it applies from {rule.threshold:,} a day, and {name} counts all mail "
                                       "from your domain in a day, not only this list")
            findings.append(found(rule.severity if applies else WARNING, rule.code,
                                  f"{scope}: {rule.title} needs {', '.join(NEEDS[n][0] for n in missing)}: "
                                  f"{rule.consequence}{when}", where,
                                  fix="; ".join(NEEDS[n][1] for n in missing), rule=rule.source))
    return findings
