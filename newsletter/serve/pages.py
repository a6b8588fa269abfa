"""The service's pages and the confirmation mail, rendered with Jinja2 (autoescaped, no JavaScript).

Pages wear the newsletter's email theme: they link ``/theme.css`` (the
theme's own ``style.css``) and use its class names, plus a few form rules of
their own (``pages.css``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import jinja2

from ..config import Settings

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html.j2"]),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _common(settings: Settings) -> dict[str, str]:
    return {"newsletter": settings.name, "postal_address": settings.postal_address, "language": settings.language}


def subscribe_page(settings: Settings, list_name: str, honeypot: str) -> str:
    return _environment().get_template("subscribe.html.j2").render(
        **_common(settings), title="Subscribe", list_name=list_name, honeypot=honeypot)


def message_page(settings: Settings, title: str, paragraphs: Sequence[str], *, action: str = "",
                 button: str = "", hidden: Sequence[tuple[str, str]] = ()) -> str:
    """A page that says something, with at most one button (a POST form)."""
    return _environment().get_template("message.html.j2").render(
        **_common(settings), title=title, paragraphs=paragraphs, action=action, button=button, hidden=hidden)


def render_mail(settings: Settings, list_name: str, confirm_url: str) -> tuple[str, str]:
    """(html, text) of the confirmation mail."""
    values = {**_common(settings), "list_name": list_name, "confirm_url": confirm_url,
              "hours": f"{settings.serve.confirm_hours:g}"}
    env = _environment()
    return env.get_template("confirm_email.html.j2").render(values), env.get_template(
        "confirm_email.txt.j2").render(values)


def page_css() -> str:
    return (TEMPLATES / "pages.css").read_text(encoding="utf-8")


def theme_css(settings: Settings) -> str:
    """The email theme's stylesheet (the newsletter's own theme or a shipped one), or nothing if it has none."""
    from ..themes import theme_folder

    path = theme_folder(settings, settings.theme) / "style.css"
    return path.read_text(encoding="utf-8") if path.is_file() else ""
