"""newsletter: compose, preview and send an email newsletter from plain files.

The library works without the CLI: load settings and an issue, build it,
check it, send it. ``newsletter.cli`` is a thin layer over these modules.
"""

from .errors import NewsletterError

__version__ = "0.1.0"
__all__ = ["NewsletterError", "__version__"]
