"""Build cost against premailer's own inlining cost, measured in one run.

Prints, for the example issue and a generated 20-article issue: the whole
build (load, render HTML + text + web, inline), premailer's inlining of the
same HTML alone, and their ratio. Targets: ratio <= 2.0 (everything but
inlining is cheap) and the 20-article issue builds in under 1 s.

"cold" runs clear premailer's CSS-parse cache and the Jinja environment first,
as every ``newsletter build`` process starts (compiled templates still come
from Jinja's on-disk bytecode cache, as they do for a CLI build after the
first): that is the figure the targets apply to.
"warm" runs keep it, as the preview server's rebuilds do; printed for
information, since there the fixed cost of parsing Markdown in pure Python
(markdown-it-py) outweighs inlining.

    python benchmarks/build.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.compose.build import build_issue  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.compose.inline import inline_css  # noqa: E402
from newsletter.compose import render  # noqa: E402
from newsletter.compose.render import render_issue  # noqa: E402
from newsletter.compose.content import load_issue  # noqa: E402
from premailer.cache import cache as premailer_cache  # noqa: E402

RATIO_TARGET = 2.0
TWENTY_TARGET_SECONDS = 1.0


def generated_issue(root: Path, articles: int) -> Path:
    """An issue of ``articles`` articles, each a copy of the seed article's Markdown with its own title."""
    source = next((REPO / "issues" / "2026-11-25-first-dispatch").glob("trumps-*.md")).read_text()
    body = source.split("---", 2)[2]
    folder = root / "issues" / "2027-01-01-twenty"
    folder.mkdir(parents=True)
    names = []
    for i in range(articles):
        name = f"article-{i:02d}.md"
        (folder / name).write_text(f"---\ntitle: Article number {i}\nauthor: Writer {i}\n---\n{body}")
        names.append(name)
    listing = "".join(f"- {n}\n" for n in names)
    (folder / "issue.md").write_text(f"---\nsubject: Twenty\npreheader: Twenty articles\narticles:\n{listing}---\n\n"
                                     "Hi {{ subscriber.name | default('there') }}.\n")
    return folder


def measure(settings, folder: Path, repeat: int, cold: bool) -> tuple[float, float, float, int]:
    """(build s, inline s, ratio, HTML bytes): medians over ``repeat`` interleaved pairs.

    Each pair times a whole build and then premailer alone on the same HTML, back to back,
    so a slower moment of the machine slows both; the ratio is the median of the pairs' ratios.
    """
    rendered = render_issue(settings, load_issue(folder), None)
    builds, inlines, ratios = [], [], []
    for _ in range(repeat):
        if cold:  # as a new `newsletter build` process: no premailer CSS cache, no Jinja environment yet
            premailer_cache.clear()
            render._environment.cache_clear()
        start = time.perf_counter()
        build_issue(settings, folder)
        builds.append(time.perf_counter() - start)
        if cold:
            premailer_cache.clear()
        start = time.perf_counter()
        inline_css(rendered.html)
        inlines.append(time.perf_counter() - start)
        ratios.append(builds[-1] / inlines[-1])
    return statistics.median(builds), statistics.median(inlines), statistics.median(ratios), len(rendered.html)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
        for folder in ("templates", "subscribers", "issues"):
            shutil.copytree(REPO / folder, root / folder)
        settings = load_settings(root)
        cases = [("example issue", root / "issues" / "2026-11-25-first-dispatch"),
                 ("20-article issue", generated_issue(root, 20))]
        build_issue(settings, cases[0][1])  # warm imports and caches once
        ok = True
        print(f"{'issue':<18}{'run':>6}{'html KB':>9}{'build s':>10}{'inline s':>10}{'ratio':>8}"
              f"  target ratio <= {RATIO_TARGET} (cold)")
        for label, folder in cases:
            for cold in (True, False):
                build_s, inline_s, ratio, size = measure(settings, folder, args.repeat, cold)
                if cold:
                    ok &= ratio <= RATIO_TARGET
                    if label.startswith("20"):
                        ok &= build_s < TWENTY_TARGET_SECONDS
                        twenty = build_s
                print(f"{label:<18}{'cold' if cold else 'warm':>6}{size / 1024:>9.0f}{build_s:>10.3f}"
                      f"{inline_s:>10.3f}{ratio:>8.2f}")
        print(f"20-article build (cold): {twenty:.3f} s (target < {TWENTY_TARGET_SECONDS:.1f} s)")
        print("targets met" if ok else "TARGET MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
