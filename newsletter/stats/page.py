"""The stats page written to a file (``stats --html``), or kept for the preview server and the archive."""

from __future__ import annotations

from pathlib import Path

from ..compose.content import Issue
from ..config import Settings
from ..errors import NewsletterError, display_path
from .figures import IssueFigures
from .report import html_page
from .sources import Overview


def page_title(data: IssueFigures | Overview) -> str:
    return f"Stats: {data.folder}" if isinstance(data, IssueFigures) else "Stats: the last issues"


def write_page(data: IssueFigures | Overview, path: Path) -> str:
    """Write the page; returns the path as the writer would type it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html_page(data, page_title(data)), encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the stats page: {err.strerror}", where=display_path(path)) from None
    return display_path(path)


def issue_page(settings: Settings, issue_dir: Path) -> str:
    """The stats page of one issue, or a page saying why there are no figures (for the preview server)."""
    import html

    from .sources import stats_of_issue

    try:
        figures = stats_of_issue(settings, issue_dir)
    except NewsletterError as err:
        return (f"<!doctype html><meta charset=utf-8><title>No stats yet</title><h1>No stats yet</h1>"
                f"<p>{html.escape(str(err))}</p>")
    return html_page(figures, page_title(figures))


def write_archive_pages(settings: Settings, issue_dirs: list[Path], out_dir: Path) -> list[Path]:
    """``<issue>/stats.html`` beside each archived issue that was sent (``archive --stats``): aggregate
    figures only, no reader is named in them. Issues never sent get none."""
    from .sources import event_store, issue_figures, sent_issues

    sent = {issue.issue_id for issue in sent_issues(settings)}
    written = []
    with event_store(settings) as store:
        for folder in issue_dirs:
            issue, issue_id = (None, "") if not (folder / "issue.md").is_file() else find_issue_or_none(folder)
            if issue is None or issue_id not in sent:
                continue
            figures = issue_figures(settings, issue_id, issue.name, issue.subject, store)
            path = out_dir / issue.name / "stats.html"
            write_page(figures, path)
            written.append(path)
    return written


def find_issue_or_none(folder: Path) -> tuple[Issue | None, str]:
    from ..compose.content import load_issue

    issue = load_issue(folder)
    return (issue, issue.id) if issue.id else (None, "")
