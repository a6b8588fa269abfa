"""A ``*_env`` setting names the environment variable that holds a secret; its value is printed only when
it reads as a variable's name.

A writer may paste the secret itself where its variable's NAME belongs (``api_key_env = "..."``): the
variable is then "not set", and a message naming it would print the secret. ``config.py`` refuses the
values that cannot be a name at all; a secret that could be one (letters and digits only) gets here.
``variable_name`` is what any message says instead, and ``unset_variable`` is the "not set" error,
which then says to put the variable's NAME there and never shows the value.
"""

from __future__ import annotations

import re

from .errors import NewsletterError

_VARIABLE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")


def looks_like_variable(value: str) -> bool:
    """Whether a ``*_env`` setting's value reads as an environment variable's name: upper-case words
    joined by underscores (``SENDGRID_API_KEY``, ``SMTP_PASSWORD``). A long run of letters with digits, or
    one long word, is far more likely a generated key or password than a name."""
    if not _VARIABLE.match(value):
        return False
    words = value.split("_")
    if len(words) == 1 and len(value) > 16:
        return False
    return not any(len(word) >= 12 and any(c.isdigit() for c in word) for word in words)


def variable_name(setting: str, value: str) -> str:
    """How a message names the variable the setting ``setting`` (``sendgrid.api_key_env``) gives: its value
    when that reads as a variable's name, else ``the variable sendgrid.api_key_env names`` (never the value:
    it may be the secret itself)."""
    return value if looks_like_variable(value) else f"the variable {setting} names"


def unset_variable(setting: str, value: str, holds: str, *, example: str, placeholder: str,
                   more: str = "") -> NewsletterError:
    """The error for a secret whose variable is not set: naming the variable when its name is safe to print;
    else saying that the setting should hold the variable's NAME, without showing what it holds."""
    if looks_like_variable(value):
        return NewsletterError(f"environment variable {value} is not set; it holds {holds}",
                               hint=f"export {value}=<{placeholder}>{more}")
    key = setting.rsplit(".", 1)[-1]
    return NewsletterError(
        f"the environment variable {setting} names is not set; it holds {holds}. {setting} must be the NAME of "
        f"an environment variable, like {example}; its value does not look like one, so it is not shown here "
        "(it may be the secret itself)",
        where="newsletter.toml",
        hint=f"write {key} = \"{example}\" in newsletter.toml and export {example}=<{placeholder}>{more}. If the "
             "value there was a real key or password, treat it as exposed: revoke it and make a new one")


__all__ = ["looks_like_variable", "unset_variable", "variable_name"]
