"""``newsletter init --ci github|gitlab``: a publishing workflow for a newsletter kept in git.

The workflow's steps are plain ``newsletter`` commands (``review`` on a pull
request, ``send --due`` on the default branch and on a schedule), so what CI
does can be run, step by step, on a laptop. Its text ships with the package
(``data/ci/``), with the default branch and this version written in.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from . import __version__
from .errors import NewsletterError, display_path

WORKFLOWS = {"github": Path(".github/workflows/newsletter.yml"), "gitlab": Path(".gitlab-ci.yml")}


def workflow_text(kind: str, branch: str = "main") -> str:
    """The workflow for CI ``kind`` (github or gitlab), for the default branch ``branch``."""
    if kind not in WORKFLOWS:
        raise NewsletterError(f"unknown CI '{kind}'", hint=f"use one of: {', '.join(WORKFLOWS)}")
    text = resources.files("newsletter").joinpath("data", "ci", f"{kind}.yml").read_text(encoding="utf-8")
    return text.replace("__BRANCH__", branch).replace("__VERSION__", __version__)


def write_workflow(root: Path, kind: str, branch: str = "main") -> Path:
    """Write the workflow into the newsletter at ``root``; never over an existing one."""
    path = root / WORKFLOWS.get(kind, Path(kind))
    text = workflow_text(kind, branch)
    if path.exists():
        raise NewsletterError("a workflow is already there", where=display_path(path),
                              hint="edit it, or move it aside and run newsletter init --ci again")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the workflow: {err.strerror}", where=display_path(path)) from None
    return path
