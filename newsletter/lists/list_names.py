"""List names: the one check every command applies to ``--list NAME`` before touching a file (the rule
itself is ``newsletter/list_name_rule.py``, below the settings, which apply it too).

A list name becomes a file name under ``subscribers/``; a name with a
slash or ``..`` would let ``send --list ../../elsewhere/x`` read (or an
edit write) a CSV anywhere on the disk, so only plain names pass, and a
list file that is a symbolic link to a file outside ``subscribers/`` is
refused for the same reason.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import NewsletterError, display_path
from ..list_name_rule import check_list_name as check_list_name  # lists' public name for it


def require_list(path: Path) -> Path:
    """``path`` if the list exists (and is not a link to a file outside its folder), else an error naming the
    lists that do."""
    refuse_link_outside(path)
    if path.is_file():
        return path
    if path.exists():
        raise NewsletterError("is not a file", where=path,
                              hint="a list is a CSV file; move whatever is there out of the way")
    others = sorted(p.stem for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
    close = difflib.get_close_matches(path.stem, others, n=1)
    if close:
        hint = f"did you mean '{close[0]}'?"
    elif others:
        hint = f"lists here: {', '.join(others)}"
    else:
        hint = f"create it with: newsletter subscribers add EMAIL --list {path.stem}"
    raise NewsletterError("no such list", where=path, hint=hint)


def refuse_link_outside(path: Path) -> None:
    """Refuse a list file that is a symbolic link to a file outside its folder (``subscribers/``): sends,
    unsubscribes and syncs would read and rewrite a file elsewhere on the disk, out of the newsletter's
    repository, under a list's name."""
    if not path.is_symlink():
        return
    try:
        target = path.resolve()
        folder = path.parent.resolve()
    except (OSError, RuntimeError):  # a link loop: is_file() is False, and require_list says what is wrong
        return
    if not target.is_relative_to(folder):
        raise NewsletterError(f"is a link to {target}, outside {display_path(path.parent)}/",
                              where=path,
                              hint=f"a list must be a file in {display_path(path.parent)}/: replace the link with a "
                                   f"copy of the file (cp --remove-destination {target} {display_path(path)}), "
                                   "or keep the list itself there")
