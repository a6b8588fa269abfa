"""The size an issue's own images are shown at: their natural size, never wider than the theme's
article column.

Outlook for Windows ignores CSS ``max-width`` and shows an ``<img>`` without a ``width``
attribute at its natural size, so a 1600 px photo overflows the email. Images that are files in
the issue's folder are measured here (Pillow reads only the file's header) and get ``width``
and a ``height`` in proportion; every other client keeps the theme's fluid
``max-width:100%; height:auto`` from CSS. Remote images cannot be measured without fetching
them, which the build never does; ``check`` reports those.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .relative_links import local_file


@dataclass(frozen=True)
class ImageSizer:
    """``(width, height)`` to show an image at, for ``src`` as written in a file of ``folder``."""

    folder: Path
    content_width: int

    def __call__(self, src: str) -> tuple[int, int] | None:
        natural = self.natural_size(src)
        if natural is None:
            return None
        width, height = natural
        shown = min(width, self.content_width)
        return shown, max(1, round(height * shown / width))

    def local_file(self, src: str) -> Path | None:
        """The existing file a relative ``src`` names inside the issue folder; None for anything else."""
        parts = urlsplit(src.strip())
        if parts.scheme or parts.netloc:
            return None
        path = local_file(self.folder, src.strip())
        return path if path is not None and path.is_file() else None

    def natural_size(self, src: str) -> tuple[int, int] | None:
        """The pixel size of a local image; None when it is not one or Pillow cannot read it (SVG)."""
        path = self.local_file(src)
        if path is None:
            return None
        from PIL import Image  # only when an issue has images of its own

        try:
            with warnings.catch_warnings():  # only the header is read: no decompression bomb to warn about
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        return (width, height) if width > 0 and height > 0 else None
