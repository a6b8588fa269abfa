"""``newsletter stats`` as text, JSON and an HTML page (with charts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from .figures import IssueFigures
from .sources import Overview

TEMPLATES = Path(__file__).parent / "templates"
OPENS_NOTE = "opens, inflated by privacy proxies"


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def issue_lines(figures: IssueFigures) -> list[str]:
    f = figures
    lines = [f"{f.folder}: {f.subject}" if f.subject else f.folder,
             f"  sent {f.sent_at or 'never'} to {', '.join(f.lists)}; {f.recipients} copies accepted",
             f"  delivered        {f.delivered:>8}   ({f.delivered_source})",
             f"  bounced          {f.bounced_hard + f.bounced_soft:>8}   ({f.bounced_hard} hard, {f.bounced_soft} soft;"
             f" {f.deferred} deferred, {f.dropped} dropped)",
             f"  complaints       {f.complaints:>8}",
             f"  unsubscribed     {f.unsubscribed:>8}",
             f"  human clickers   {f.unique_human_clickers:>8}   ({_percent(f.unique_human_clickers, f.delivered)} of "
             f"delivered; {f.human_clicks} human clicks)"]
    if f.filtered:
        lines.append("  not counted      " + ", ".join(f"{n} {reason}" for reason, n in f.filtered.items())
                     + " (scanners, previews and prefetches)")
    if f.opens or f.provider_clicks:
        lines.append(f"  provider opens   {f.opens:>8}   ({OPENS_NOTE}); provider-tracked clickers "
                     f"{f.provider_clicks}")
    if f.links:
        lines.append("  clicks per link (human, unique readers, program fetches not counted):")
        lines += [f"    {link.human_clicks:>6} {link.unique_human_clickers:>6} {link.program_fetches:>6}  {link.url}"
                  for link in f.links]
    lines.append("  by receiving domain (recipients, human clickers, rate):")
    lines += [f"    {g.name:<10} {g.recipients:>8} {g.unique_human_clickers:>8} "
              f"{_percent(g.unique_human_clickers, g.recipients):>7}"
              for g in f.groups if g.recipients or g.unique_human_clickers]
    if f.timeline:
        lines.append("  over time: " + ", ".join(f"{count} by {hours:.1f} h" for hours, count in
                                                 _milestones(f.timeline)))
    if f.ab:
        lines.append("  A/B test on subjects (unique human clickers of each slice):")
        for number, subject in enumerate(f.ab["subjects"], start=1):
            sent, clicked = f.ab["sent"][str(number)], f.ab["unique_human_clickers"][str(number)]
            lines.append(f"    {number}. {subject}: {clicked} of {sent} ({_percent(clicked, sent)})")
        lines.append(f"    decision: {f.ab['summary'] or f.ab['verdict']}")
    lines += [f"  note: {note}" for note in f.notes]
    return lines


def _milestones(timeline: list[tuple[float, int]], count: int = 4) -> list[tuple[float, int]]:
    """A few points of the cumulative curve: a quarter, half, three quarters and all of the clickers."""
    total = timeline[-1][1]
    wanted = sorted({max(1, round(total * q / count)) for q in range(1, count + 1)})
    return [next(point for point in timeline if point[1] >= target) for target in wanted]


def overview_lines(view: Overview) -> list[str]:
    lines = [f"{'issue':<34}{'sent':>12}{'delivered':>11}{'clickers':>10}{'rate':>8}{'unsub':>7}{'bounced':>9}"]
    for f in view.issues:
        lines.append(f"{f.folder[:33]:<34}{f.sent_at[:10]:>12}{f.delivered:>11}{f.unique_human_clickers:>10}"
                     f"{_percent(f.unique_human_clickers, f.delivered):>8}{f.unsubscribed:>7}"
                     f"{f.bounced_hard + f.bounced_soft:>9}")
    if not view.issues:
        lines.append("(no issue sent yet)")
    for name, weeks in view.growth.items():
        lines.append(f"list {name}: growth from newsletter serve's events (week, joined, left, net)")
        lines += [f"  {w.week}  +{w.joined:<5} -{w.left:<5} {w.joined - w.left:+d}" for w in weeks] or ["  no events"]
    lines += [f"note: {note}" for note in view.notes]
    return lines


def as_json(data: IssueFigures | Overview) -> str:
    payload: dict[str, Any]
    if isinstance(data, IssueFigures):
        payload = data.to_dict()
    else:
        payload = {"issues": [f.to_dict() for f in data.issues],
                   "list_growth": {name: [vars(w) for w in weeks] for name, weeks in data.growth.items()},
                   "notes": data.notes}
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def html_page(data: IssueFigures | Overview, title: str) -> str:
    """A self-contained page (its charts inline SVG, no script), for a browser, the preview or the archive."""
    from markupsafe import Markup

    from . import charts

    if isinstance(data, IssueFigures):
        return _environment().get_template("issue.html.j2").render(
            title=title, f=data, opens_note=OPENS_NOTE, percent=_percent,
            over_time=Markup(charts.clicks_over_time(data)), per_link=Markup(charts.clicks_per_link(data)))
    return _environment().get_template("overview.html.j2").render(
        title=title, view=data, percent=_percent, side_by_side=Markup(charts.issues_side_by_side(data.issues)))
