"""What a DMARC Policy Record says, read by the grammar of RFC 9989 §4.7 and §4.8, and what is wrong in it.

RFC 9989 (May 2026) replaced RFC 7489. A record must start with
``v=DMARC1`` (exactly: the value is case-sensitive), or receivers ignore
it. Unknown tags are ignored, and a tag whose value breaks the grammar is
discarded in favour of its default: so ``adkim=x`` means relaxed, and a
``rua=`` that is not a URI means no reports at all. ``pct``, ``rf`` and
``ri`` are gone (historic in the IANA registry, RFC 9989 §9.3); ``t``,
``np`` and ``psd`` are new. Receivers still built on RFC 7489 read ``pct``,
so a bad ``pct`` is still worth a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

POLICIES = ("none", "quarantine", "reject")
KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "fo", "rua", "ruf", "t", "psd")
OBSOLETE_TAGS = ("pct", "rf", "ri")
_CHOICES = {"adkim": ("r", "s"), "aspf": ("r", "s"), "t": ("y", "n"), "psd": ("y", "n", "u")}
_DEFAULTS = {"adkim": "r (relaxed)", "aspf": "r (relaxed)", "t": "n (apply the policy)",
             "psd": "u (found by the DNS tree walk)", "fo": "0"}
_FO = re.compile(r"[01ds](:[01ds])*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_OBSOLETE_SIZE = re.compile(r"!\d+[kmgt]?\Z", re.IGNORECASE)
_TAG_NAME = re.compile(r"[A-Za-z]+\Z")


@dataclass(frozen=True)
class Problem:
    """Something wrong or worth knowing in a record: severity, code, what, and the clause it follows."""

    severity: str  # error | warning | info
    code: str
    message: str
    rule: str
    fix: str = ""


def version_of(text: str) -> str:
    """The value of the record's first tag when that tag is ``v`` ("" otherwise)."""
    name, sep, value = text.split(";", 1)[0].partition("=")
    return value.strip() if sep and name.strip() == "v" else ""


def is_dmarc(text: str) -> bool:
    """A DMARC Policy Record: its first tag is ``v=DMARC1``, case and all (RFC 9989 §4.7, tag v)."""
    return version_of(text) == "DMARC1"


def looks_like_dmarc(text: str) -> bool:
    """Meant as a DMARC record but not one: ``v=dmarc1``, or ``v=DMARC1`` that is not the first tag."""
    squeezed = "".join(text.split()).lower()
    return not is_dmarc(text) and ("v=dmarc1" in squeezed.split(";") or squeezed.startswith("v=dmarc1"))


def parse_tags(text: str) -> dict[str, str]:
    """``v=DMARC1; p=none`` -> {"v": "DMARC1", "p": "none"}: names lowercased, values trimmed, first wins."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if sep and name:
            tags.setdefault(name, value.strip())
    return tags


def valid_uri(text: str) -> bool:
    """A DMARC reporting URI (RFC 9989 §4.8: an RFC 3986 URI, with an obsolete ``!size`` allowed)."""
    uri = _OBSOLETE_SIZE.sub("", text.strip())
    scheme, colon, rest = uri.partition(":")
    if not colon or not _SCHEME.match(scheme) or not rest or any(c.isspace() for c in uri):
        return False
    if scheme.lower() == "mailto":
        local, at, domain = rest.partition("@")
        return bool(local) and bool(at) and "." in domain and not domain.startswith(".")
    return bool(urlsplit(uri).netloc or urlsplit(uri).path)


@dataclass(frozen=True)
class DmarcRecord:
    """A valid DMARC Policy Record and where it was found."""

    domain: str  # the domain it is published for (the record is at _dmarc.<domain>)
    text: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, domain: str, text: str) -> DmarcRecord:
        return cls(domain, text, parse_tags(text))

    @property
    def name(self) -> str:
        return f"_dmarc.{self.domain}"

    def valid_policy(self, tag: str) -> str:
        """The tag's value when it is a valid policy (lowercased), else ""."""
        value = self.tags.get(tag, "").lower()
        return value if value in POLICIES else ""

    def mode(self, tag: str) -> str:
        """adkim/aspf: "s" only when the record says s; anything else is the default, relaxed (RFC 9989 §4.8)."""
        return "s" if self.tags.get(tag, "r").lower() == "s" else "r"

    @property
    def psd(self) -> str:
        value = self.tags.get("psd", "u").lower()
        return value if value in ("y", "n") else "u"

    @property
    def testing(self) -> bool:
        return self.tags.get("t", "n").lower() == "y"

    @property
    def percent(self) -> int:
        """pct= as receivers still on RFC 7489 read it: 0-100, anything else discarded for the default, 100."""
        value = self.tags.get("pct", "100")
        return int(value) if value.isdigit() and int(value) <= 100 else 100

    @property
    def report_uris(self) -> list[str]:
        return [u.strip() for u in self.tags.get("rua", "").split(",") if u.strip()]

    @property
    def has_valid_rua(self) -> bool:
        return any(valid_uri(u) for u in self.report_uris)

    def broken_policy_tags(self) -> list[str]:
        """``p=...``, ``sp=...``, ``np=...`` as written, for each that is missing (p) or not a valid policy."""
        broken = [] if self.valid_policy("p") else [f"p={self.tags.get('p', '(missing)')}"]
        return broken + [f"{t}={self.tags[t]}" for t in ("sp", "np") if t in self.tags and not self.valid_policy(t)]

    def policy_broken(self) -> bool:
        """No valid p=, or an sp=/np= that is not valid: RFC 9989 §4.10.1 then has receivers act as if p=none
        when rua= has a valid URI, and apply no DMARC at all when it has none."""
        return (not self.valid_policy("p") or ("sp" in self.tags and not self.valid_policy("sp"))
                or ("np" in self.tags and not self.valid_policy("np")))

    def problems(self) -> list[Problem]:
        """Every tag whose value breaks the grammar, obsolete tags, unknown tags; not the policy (see
        ``policy_broken``), which decides whether DMARC applies at all."""
        found: list[Problem] = []
        for name, value in self.tags.items():
            found.extend(self._tag_problems(name, value))
        return found

    def _tag_problems(self, name: str, value: str) -> list[Problem]:
        shown = f"{name}={value}"
        if name in _CHOICES and value.lower() not in _CHOICES[name]:
            return [Problem("warning", "dmarc-invalid-tag", f"{shown} in the DMARC record at {self.name} is not "
                            f"one of {', '.join(_CHOICES[name])}: receivers discard it and use the default, "
                            f"{_DEFAULTS[name]}", f"RFC 9989 §4.7 (tag {name}), §4.8 (a value that breaks the "
                            "grammar is discarded in favour of the default)",
                            fix=f"set {name} to one of {', '.join(_CHOICES[name])}, or remove it")]
        if name == "fo" and not _FO.fullmatch(value.replace(" ", "")):
            return [Problem("warning", "dmarc-invalid-tag", f"{shown} in the DMARC record at {self.name} is not "
                            "a colon-separated list of 0, 1, d, s: receivers use fo=0", "RFC 9989 §4.7 (tag fo), "
                            "§4.8", fix="set fo=1 (or remove it)")]
        if name in ("rua", "ruf"):
            bad = [u for u in value.split(",") if not valid_uri(u)]
            sizes = [u.strip() for u in value.split(",") if "!" in u and valid_uri(u)]
            problems = []
            if bad:
                what = "aggregate reports" if name == "rua" else "failure reports"
                problems.append(Problem("warning", "dmarc-bad-uri", f"{name}= of the DMARC record at {self.name} "
                                        f"has {', '.join(repr(u.strip()) for u in bad)}, which is not a URI: no "
                                        f"{what} are sent there", f"RFC 9989 §4.7 (tag {name}: a list of DMARC "
                                        "URIs), §4.8 (dmarc-uri = URI, RFC 3986 §3)",
                                        fix=f"write it as {name}=mailto:{_address_of(bad[0], self.domain)}"))
            if sizes:
                problems.append(Problem("info", "dmarc-obsolete-tag", f"{name}= of the DMARC record at {self.name} "
                                        f"gives a report size ({', '.join(sizes)}), which RFC 9989 made obsolete: "
                                        "receivers ignore it", "RFC 9989 §4.8 (obs-dmarc-report-size), "
                                        "Appendix C.4", fix="drop the !size suffix"))
            return problems
        if name == "pct":
            if not (value.isdigit() and 0 <= int(value) <= 100):
                return [Problem("warning", "dmarc-invalid-tag", f"{shown} in the DMARC record at {self.name} is "
                                "not a whole number from 0 to 100: receivers still on RFC 7489 discard it, and "
                                "RFC 9989 removed pct altogether", "RFC 7489 §6.3 (pct: 0-100); RFC 9989 "
                                "Appendix C.5.2 (pct removed)", fix="remove pct (use t=y to test a policy)")]
            effect = ("; RFC 9989 receivers apply the policy to all failing mail, not to "
                      f"{value}%, so use t=y to test a policy" if value != "100" else "")
            return [Problem("info", "dmarc-obsolete-tag", f"{shown} in the DMARC record at {self.name} is obsolete "
                            f"(RFC 9989 removed it){effect}", "RFC 9989 Appendix A.6, C.5.2 (pct removed)",
                            fix="remove pct" + (" and add t=y while testing" if value != "100" else ""))]
        if name in ("rf", "ri"):
            return [Problem("info", "dmarc-obsolete-tag", f"{shown} in the DMARC record at {self.name} is obsolete "
                            "(RFC 9989 removed it; reporting is defined apart now): receivers ignore it",
                            "RFC 9989 Appendix C.5.2 (rf and ri removed)", fix=f"remove {name}")]
        if name == "t" and value.lower() == "y":
            return [Problem("info", "dmarc-testing", f"t=y in the DMARC record at {self.name}: the policy is being "
                            "tested, so receivers apply one level less (reject as quarantine, quarantine as none)",
                            "RFC 9989 §4.7 (tag t)", fix="remove t=y once the reports show your mail passing")]
        if name not in KNOWN_TAGS and name not in OBSOLETE_TAGS and _TAG_NAME.match(name):
            return [Problem("info", "dmarc-unknown-tag", f"{shown} in the DMARC record at {self.name} is not a DMARC "
                            "tag: receivers ignore it", "RFC 9989 §4.7 (unknown tags MUST be ignored)",
                            fix=f"remove {name}= or correct its name (" + ", ".join(KNOWN_TAGS[1:]) + ")")]
        return []


def _address_of(text: str, domain: str) -> str:
    text = text.strip()
    return text if "@" in text else f"dmarc@{domain}"
