"""The kinds of value a setting in ``newsletter.toml`` can hold, and one function that reads each.

A setting's kind is its type annotation in the settings dataclasses of config.py (``float``, ``int | None``,
``tuple[str, ...]`` ...), read with ``typing.get_type_hints``: adding a setting is adding a field, and a
field of a type no function here reads fails at the first load, for the developer who added it. Each
function checks a TOML value and returns it converted, or raises the NewsletterError that names the file,
the ``table.key`` and the line to write instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from .errors import NewsletterError, display_path


class Setting(NamedTuple):
    """One ``table.key`` of ``newsletter.toml`` being read: where it is, for the errors that name it."""

    path: Path
    section: str
    key: str
    default: Any

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def refuse(self, must: str, example: str, *, shown: object = None) -> NewsletterError:
        """``'send.batch_size' must be a whole number, not '10' (write batch_size = 1000 under [send] ...)``."""
        given = "" if shown is None else f", not {shown!r}"
        return NewsletterError(f"'{self.name}' must be {must}{given}", where=display_path(self.path),
                               hint=f"write {example} under [{self.section}], or remove the line for the default")

    def example(self, fallback: str) -> str:
        """``key = <the default>`` as TOML, or ``key = <fallback>`` where the default says nothing."""
        default = self.default
        if isinstance(default, bool):
            value = "true" if default else "false"
        elif isinstance(default, (int, float)):
            value = repr(default)
        elif isinstance(default, str) and default:
            value = f'"{default}"'
        else:
            value = fallback
        return f"{self.key} = {value}"


def _shown(value: object, setting: Setting) -> object:
    """The value to quote in an error: never an ``*_env`` setting's, which may be a pasted secret."""
    return None if setting.key.endswith("_env") else value


def _text(value: object, setting: Setting) -> str:
    if not isinstance(value, str):
        raise setting.refuse("a string in quotes", setting.example('"..."'), shown=_shown(value, setting))
    return value.strip()


def _flag(value: object, setting: Setting) -> bool:
    if not isinstance(value, bool):
        raise setting.refuse("true or false", setting.example("true"), shown=value)
    return value


def _whole_number(value: object, setting: Setting) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise setting.refuse("a whole number", setting.example("1"), shown=value)
    return value


def _number(value: object, setting: Setting) -> float:
    """A number of seconds, a share or a score: TOML's ``inf`` and ``nan`` are numbers too, but no setting
    can mean them (``timeout = inf`` would wait for ever, ``nan`` passes no comparison)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise setting.refuse("a number", setting.example("1.0"), shown=value)
    if not math.isfinite(value):
        raise setting.refuse("a finite number", setting.example("1.0"), shown=value)
    return float(value)


def _strings(value: object, setting: Setting) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise setting.refuse('a list of strings, like ["a", "b"]', setting.example('["..."]'))
    return tuple(value)


def _caps(value: object, setting: Setting) -> tuple[tuple[str, int], ...]:
    """A table of name -> whole number above 0, like ``[send.domains] "gmail.com" = 2000``, kept hashable."""
    if not isinstance(value, dict) or not all(isinstance(cap, int) and not isinstance(cap, bool) and cap > 0
                                              for cap in value.values()):
        raise NewsletterError(f"'{setting.name}' must be a table of names to whole numbers above 0, like "
                              f"[{setting.name}] \"gmail.com\" = 2000", where=display_path(setting.path),
                              hint="remove a name's line to leave it uncapped")
    return tuple(sorted((str(name).strip().lower(), cap) for name, cap in value.items()))


Read = Callable[[object, Setting], Any]
# The type a setting is annotated with -> the one function that checks and converts its TOML value.
KINDS: dict[object, Read] = {
    str: _text, bool: _flag, int: _whole_number, float: _number,
    tuple[str, ...]: _strings, tuple[tuple[str, int], ...]: _caps,
}


def _kind(annotation: object) -> Read:
    """``int | None`` is read as ``int``: TOML has no null, so an optional setting is either there or left out."""
    if get_origin(annotation) in (Union, UnionType):
        present = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(present) == 1:
            annotation = present[0]
    try:
        return KINDS[annotation]
    except KeyError:  # a setting added with a type nobody taught this module: fail at once, for the developer
        raise TypeError(f"no coercion for settings of type {annotation}: add one to config_types.KINDS") from None


@functools.cache
def setting_readers(cls: type, names: tuple[str, ...] | None = None) -> dict[str, tuple[Read, Any]]:
    """The fields ``names`` (default: all) of a settings dataclass -> (the function that reads its TOML value,
    chosen by its type annotation; its default, for the example in an error)."""
    hints = get_type_hints(cls)
    chosen = [f for f in fields(cls) if names is None or f.name in names]
    return {f.name: (_kind(hints[f.name]), f.default) for f in chosen}

