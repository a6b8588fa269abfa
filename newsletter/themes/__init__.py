"""Where a theme's files are: the newsletter's own ``templates/<theme>/`` first, then the themes
shipped inside the package.

The default theme ships with the package so that a newsletter started anywhere (``newsletter
init``) builds without copying files; a folder's own theme of the same name overrides it, and
``newsletter theme copy`` puts a shipped theme into ``templates/`` for editing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import Settings
from ..errors import NewsletterError, display_path

HTML_TEMPLATE = "email.html.j2"
TEXT_TEMPLATE = "email.txt.j2"
SHIPPED_THEMES = Path(__file__).resolve().parent


def _is_theme(folder: Path) -> bool:
    return (folder / HTML_TEMPLATE).is_file() and (folder / TEXT_TEMPLATE).is_file()


def shipped_themes() -> list[str]:
    """The names of the themes that come with the package."""
    return sorted(p.name for p in SHIPPED_THEMES.iterdir() if p.is_dir() and _is_theme(p))


def available_themes(settings: Settings) -> list[str]:
    """Every theme a newsletter can name: its own folders and the shipped ones."""
    own = settings.templates_dir
    names = set(shipped_themes())
    if own.is_dir():
        names.update(p.name for p in own.iterdir() if p.is_dir() and _is_theme(p))
    return sorted(names)


def is_shipped(theme_dir: Path) -> bool:
    """True when ``theme_dir`` is a theme that ships with the package (not the writer's own)."""
    return theme_dir.resolve().parent == SHIPPED_THEMES


def theme_folder(settings: Settings, theme: str) -> Path:
    """The folder of ``theme``: ``templates/<theme>/`` when the newsletter has it, else the shipped one."""
    own = settings.templates_dir / theme
    if own.is_dir() and not _is_theme(own) and _is_theme(SHIPPED_THEMES / theme):
        # a partial copy would otherwise lose the writer's edits to the shipped theme, silently
        lacking = " and ".join(name for name in (HTML_TEMPLATE, TEXT_TEMPLATE) if not (own / name).is_file())
        raise NewsletterError(
            f"overrides the shipped theme '{theme}' but has no {lacking}, so its files would be ignored",
            where=own, hint=f"move your files aside, run newsletter theme copy {theme} and put "
                                          "your edits back into the copy; or remove the folder")
    for folder in (own, SHIPPED_THEMES / theme):
        if _is_theme(folder):
            return folder
    listing = ", ".join(available_themes(settings)) or "none"
    raise NewsletterError(
        f"unknown theme '{theme}': templates/{theme}/ needs {HTML_TEMPLATE} and {TEXT_TEMPLATE}",
        where=settings.path, hint=f"available themes: {listing}")


def template_search_path(settings: Settings, theme_dir: Path) -> list[Path]:
    """Folders Jinja looks in, in order: the theme itself, the newsletter's ``templates/`` (so
    ``{% extends "default/email.html.j2" %}`` finds an own theme first), then the shipped themes."""
    return [theme_dir.resolve(), settings.templates_dir.resolve(), SHIPPED_THEMES]


def copy_theme(settings: Settings, theme: str, *, name: str | None = None, force: bool = False) -> Path:
    """Copy a shipped theme into ``templates/<name>/`` for editing; return the new folder."""
    source = SHIPPED_THEMES / theme
    if not _is_theme(source):
        listing = ", ".join(shipped_themes()) or "none"
        raise NewsletterError(f"no shipped theme named '{theme}'", hint=f"shipped themes: {listing}")
    folder_name = theme if name is None else name
    if folder_name in ("", ".", "..") or Path(folder_name).name != folder_name or "\\" in folder_name:
        raise NewsletterError(f"--name {folder_name!r} is not a folder name of templates/",
                              hint="give a plain name such as --name spring (no / and no ..)")
    target = settings.templates_dir / folder_name
    if target.exists() and not force:
        raise NewsletterError(f"{display_path(target)} already exists",
                              hint="edit it as it is, pick another --name, or pass --force to replace it")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
