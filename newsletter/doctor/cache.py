"""A day's memory of the DNS part of the doctor, per domain, so every send does not re-ask DNS.

Kept in ``$XDG_CACHE_HOME/newsletter/doctor/`` (default ``~/.cache``), one
JSON file per From domain and setup (provider and the settings of it the
findings depend on, selectors, envelope domain, name server): change any of them and the old answer no longer
applies. Only a passing result is kept: one with a DNS failure or an error
is asked again on the next send (the next try may get an answer, and a writer
who fixed the record the send refused on must not be refused all day), and
it replaces a passing answer kept earlier. Safe to delete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from ..cache_folder import cache_folder
from ..config import Settings
from ..providers import registry
from .authentication import Authentication
from .findings import ERROR, DoctorFinding, Finding

MAX_AGE_SECONDS = 24 * 3600
CACHE_VERSION = 2  # 2: findings name their rule, and the authentication facts are kept beside them


def cache_dir() -> Path:
    return cache_folder("doctor")


def _cache_file(settings: Settings, nameserver: str | None) -> Path:
    setup = {
        "version": CACHE_VERSION, "from": settings.from_email.lower(), "reply_to": settings.reply_to.lower(),
        "provider": settings.provider, "doctor": repr(settings.doctor), "nameserver": nameserver or "",
        "provider_settings": list(registry.kind(settings.provider).doctor_fingerprint(settings)),
        "unsubscribe": settings.unsubscribe_url,
    }
    digest = hashlib.sha256(json.dumps(setup, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    domain = settings.from_email.rpartition("@")[2].lower() or "domain"
    return cache_dir() / f"{domain}-{digest}.json"


def load(settings: Settings, nameserver: str | None,
         now: float | None = None) -> tuple[list[Finding], Authentication] | None:
    """The findings and authentication facts of a run less than a day old for this setup, or None."""
    path = _cache_file(settings, nameserver)
    now = time.time() if now is None else now
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not 0 <= now - float(data["checked_at"]) < MAX_AGE_SECONDS:
            return None
        findings: list[Finding] = [DoctorFinding(**item) for item in data["findings"]]
        return findings, Authentication.from_dict(data["authentication"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(settings: Settings, nameserver: str | None, findings: list[Finding], authentication: Authentication,
          now: float | None = None) -> None:
    """Keep ``findings`` for a day when they pass; else forget any earlier answer (the next run asks again)."""
    path = _cache_file(settings, nameserver)
    if any(f.code.startswith("dns-") or f.severity == ERROR for f in findings):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # an unwritable cache folder: nothing could have been kept in it either
        return
    data = {"checked_at": time.time() if now is None else now, "findings": [f.to_dict() for f in findings],
            "authentication": authentication.to_dict()}
    _write(path, data)


def _write(path: Path, data: object) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                         suffix=".tmp") as handle:
            json.dump(data, handle)
        os.replace(handle.name, path)
    except OSError:
        pass  # a cache that cannot be written only costs a DNS look-up next time


def _mx_file(nameserver: str | None) -> Path:
    digest = hashlib.sha256(f"{CACHE_VERSION}\n{nameserver or ''}".encode()).hexdigest()[:16]
    return cache_dir() / f"mx-{digest}.json"


def load_mx(nameserver: str | None, now: float | None = None) -> dict[str, str]:
    """Recipient domain -> the provider group its MX showed ("" for none), for answers under a day old."""
    now = time.time() if now is None else now
    try:
        data = json.loads(_mx_file(nameserver).read_text(encoding="utf-8"))
        return {domain: str(group) for domain, (group, at) in data.items()
                if 0 <= now - float(at) < MAX_AGE_SECONDS}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def store_mx(nameserver: str | None, answers: dict[str, str], now: float | None = None) -> None:
    """Add ``answers`` (recipient domain -> provider group) to the day's MX answers, dropping stale ones."""
    if not answers:
        return
    now = time.time() if now is None else now
    path = _mx_file(nameserver)
    try:
        kept = {d: v for d, v in json.loads(path.read_text(encoding="utf-8")).items()
                if 0 <= now - float(v[1]) < MAX_AGE_SECONDS}
    except (OSError, ValueError, TypeError, AttributeError, IndexError):
        kept = {}
    kept.update({domain: [group, now] for domain, group in answers.items()})
    _write(path, kept)
