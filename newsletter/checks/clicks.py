"""Click counting's check: with ``[stats] clicks = true`` every link of the issue goes through
``newsletter serve``'s ``/c/`` route, so a service that does not answer there would break every link."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

from ..compose.click_links import click_service
from ..errors import NewsletterError, display_path
from .framework import ERROR, WARNING, Check, CheckContext, Finding

PROBE_SECONDS = 5.0


def check_click_service(ctx: CheckContext) -> Iterator[Finding]:
    settings = ctx.settings
    if not settings.stats.clicks:
        return
    try:
        service = click_service(settings)
    except NewsletterError as err:
        yield Finding(ERROR, "clicks-without-service", err.reason, *ctx.place_in(settings.path, "unsubscribe_url"),
                      fix=err.hint or "")
        return
    probe = f"{service}healthz"
    try:
        with urllib.request.urlopen(probe, timeout=min(PROBE_SECONDS, settings.checks.link_timeout)) as answer:
            if answer.status == 200:
                return
            problem = f"answered HTTP {answer.status}"
    except urllib.error.HTTPError as err:
        problem = f"answered HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        problem = f"did not answer ({reason})"
    yield Finding(WARNING, "click-service-unreachable",
                  f"[stats] clicks = true sends every link of the issue through newsletter serve at {service}c/, "
                  f"but {probe} {problem}: readers' clicks would lead nowhere",
                  display_path(settings.path),
                  fix="start newsletter serve there (docs/serve.md) before sending, or set clicks = false "
                      "under [stats]")


CHECKS: list[Check] = [check_click_service]
