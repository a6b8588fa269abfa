"""What would ship broken: problems no mail client reports, that every reader would see.

(Filled in below: missing local images, addresses an import made absolute
against the newsletter's own domain, the untouched placeholder introduction,
images without a width, links into a web archive not yet published.)
"""

from __future__ import annotations

from .framework import Check

CHECKS: list[Check] = []
