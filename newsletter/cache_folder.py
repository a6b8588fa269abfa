"""The one folder newsletter keeps its caches in: SpamAssassin verdicts, the doctor's DNS answers and
compiled templates each have a subfolder of it.

platformdirs knows where a user's caches belong on each system: ``$XDG_CACHE_HOME/newsletter`` on Linux
(``~/.cache/newsletter`` when the variable is unset, or relative, as the XDG specification says),
``~/Library/Caches/newsletter`` on macOS, ``%LOCALAPPDATA%\\newsletter\\Cache`` on Windows. Everything in
it is safe to delete; whoever writes a subfolder makes it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_folder(name: str) -> Path:
    """The folder of one cache (``spam``, ``doctor``, ``jinja``), not made yet."""
    import platformdirs  # here, not at the top: most commands never ask

    try:
        base = platformdirs.user_cache_dir("newsletter", appauthor=False)
    except RuntimeError:  # no home folder to be found (HOME unset, no password entry): a private temporary one
        base = os.path.join(tempfile.gettempdir(), f"newsletter-cache-{os.getuid()}")
    return Path(base) / name
