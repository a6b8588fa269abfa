"""The charts of ``newsletter stats --html``, drawn by matplotlib as SVG (no pyplot: no global state, no display).

Imported only by the page that shows them: matplotlib takes a moment to load.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .figures import IssueFigures

INK, MUTED, ACCENT = "#1f2933", "#7b8794", "#2f6fba"


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]  # the XML prolog and doctype do not belong inside an HTML page


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    figure.patch.set_alpha(0)
    return figure


def _tidy(axes: Axes) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(colors=MUTED, labelsize=9)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(MUTED)


def clicks_over_time(figures: IssueFigures) -> str:
    """Unique human clickers so far, against hours since the send: how fast an issue is read."""
    figure = _figure(6.4, 2.6)
    axes = figure.add_subplot()
    _tidy(axes)
    hours = [0.0] + [h for h, _ in figures.timeline]
    counts = [0] + [c for _, c in figures.timeline]
    hours.append(max(1.0, hours[-1] * 1.25))  # the level held since the last new clicker
    counts.append(counts[-1])
    axes.step(hours, counts, where="post", color=ACCENT, linewidth=2)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.fill_between(hours, counts, step="post", color=ACCENT, alpha=0.12)
    axes.set_xlabel("hours since the send", color=INK, fontsize=9)
    axes.set_ylabel("unique human clickers", color=INK, fontsize=9)
    axes.set_ylim(bottom=0, top=max(1, *counts) * 1.15)
    axes.set_xlim(left=0, right=hours[-1])
    axes.set_title("Clicks over time", loc="left", color=INK, fontsize=11)
    return _svg(figure)


def clicks_per_link(figures: IssueFigures, longest: int = 48) -> str:
    """Human clicks per link, with the program fetches that were not counted beside them."""
    links = figures.links or []
    figure = _figure(6.4, 0.9 + 0.42 * max(1, len(links)))
    axes = figure.add_subplot()
    _tidy(axes)
    labels: Sequence[str] = [textwrap.shorten(link.url.split("://", 1)[-1], longest, placeholder="…") for link in links]
    positions = range(len(links))
    axes.barh(list(positions), [link.human_clicks for link in links], height=0.55, color=ACCENT,
              label="human clicks")
    axes.barh(list(positions), [link.program_fetches for link in links], left=[link.human_clicks for link in links],
              height=0.55, color=MUTED, alpha=0.35, label="program fetches (not counted)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_yticks(list(positions), labels, fontsize=9, color=INK)
    axes.invert_yaxis()
    axes.set_xlabel("clicks", color=INK, fontsize=9)
    axes.set_title("Clicks per link", loc="left", color=INK, fontsize=11, pad=22)
    if links:
        axes.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
    else:
        axes.text(0.5, 0.5, "no clicks yet", transform=axes.transAxes, ha="center", color=MUTED)
    return _svg(figure)


def issues_side_by_side(issues: Sequence[IssueFigures]) -> str:
    """Each of the last issues' unique human click rate, side by side."""
    figure = _figure(6.4, 2.6)
    axes = figure.add_subplot()
    _tidy(axes)
    names = [textwrap.shorten(issue.folder, 22, placeholder="…") for issue in issues]
    axes.bar(range(len(issues)), [issue.click_rate * 100 for issue in issues], color=ACCENT)
    axes.set_xticks(range(len(issues)), names, rotation=20, ha="right", fontsize=8, color=INK)
    axes.set_ylabel("% of delivered who clicked", color=INK, fontsize=9)
    axes.set_title("Unique human click rate per issue", loc="left", color=INK, fontsize=11)
    return _svg(figure)
