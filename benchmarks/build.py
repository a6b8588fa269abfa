"""Start-up and build cost, each measured as whole processes side by side with its baseline.

A command a writer runs is a new process: its time includes starting Python and importing what it
uses, which a timer inside one process never sees. So every figure here is the wall time of a whole
process, from start to exit, and each command runs in turn with its baseline (A B A B ...), so a
slower moment of the machine slows both; the ratio is the median of the pairs' ratios.

    case                       command                          baseline                             target
    help                       newsletter --help                python -c pass                       <= 3.0x
    build, example issue       newsletter build ISSUE           premailer alone on the same HTML     <= 1.6x
    build, 20-article issue    newsletter build ISSUE           premailer alone on the same HTML     < 1.0 s

"premailer alone" is a process that imports premailer and inlines the issue's rendered HTML with the
options newsletter uses (compose/inline.py): the one step of a build that is expensive by nature.

The example newsletter is copied to a temporary folder, with a cache folder of its own (the first,
unmeasured run of each command fills it, as a writer's earlier builds have). Python's bytecode is
compiled first and PYTHONDONTWRITEBYTECODE is left out of the children's environment, as for an
installed package.

    python benchmarks/build.py [--runs 11]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_ISSUE = "issues/2026-11-25-first-dispatch"
HELP_RATIO_TARGET = 3.0
BUILD_RATIO_TARGET = 1.6
TWENTY_TARGET_SECONDS = 1.0

# The baseline of a build: premailer with the options of compose/inline.py, nothing else.
PREMAILER_ALONE = """\
import logging, sys
import premailer
html = open(sys.argv[1], encoding="utf-8").read()
premailer.Premailer(allow_network=False, allow_loading_external_files=False,
                    cssutils_logging_level=logging.CRITICAL, disable_validation=True, remove_classes=False,
                    keep_style_tags=False, strip_important=False, cache_css_parsing=True).transform(html)
"""


@dataclass(frozen=True)
class Pair:
    """A command, its baseline, and what their figures must meet."""

    label: str
    command: list[str]
    baseline: list[str]
    baseline_label: str
    ratio_target: float | None = None  # command / baseline at most this
    seconds_target: float | None = None  # command's median wall time under this


@dataclass(frozen=True)
class Result:
    pair: Pair
    command_s: float
    baseline_s: float
    ratio: float

    @property
    def met(self) -> bool:
        ratio_ok = self.pair.ratio_target is None or self.ratio <= self.pair.ratio_target
        seconds_ok = self.pair.seconds_target is None or self.command_s < self.pair.seconds_target
        return ratio_ok and seconds_ok

    def target(self) -> str:
        if self.pair.ratio_target is not None:
            return f"<= {self.pair.ratio_target:.1f}x"
        return f"< {self.pair.seconds_target:.1f} s"


def newsletter_command() -> list[str]:
    """The console script installed beside this Python, as a writer runs it; else ``python -m``."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "newsletter.cli"]


def wall_seconds(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return seconds


def measure(pair: Pair, runs: int, cwd: Path, env: dict[str, str]) -> Result:
    """Medians over ``runs`` pairs, after one unmeasured run of each (bytecode, caches)."""
    wall_seconds(pair.command, cwd, env)
    wall_seconds(pair.baseline, cwd, env)
    commands, baselines, ratios = [], [], []
    for _ in range(runs):
        commands.append(wall_seconds(pair.command, cwd, env))
        baselines.append(wall_seconds(pair.baseline, cwd, env))
        ratios.append(commands[-1] / baselines[-1])
    return Result(pair, statistics.median(commands), statistics.median(baselines), statistics.median(ratios))


def generated_issue(root: Path, articles: int) -> str:
    """An issue of ``articles`` articles, each a copy of the example article's Markdown with its own title."""
    source = next((REPO / EXAMPLE_ISSUE).glob("trumps-*.md")).read_text(encoding="utf-8")
    body = source.split("---", 2)[2]
    folder = root / "issues" / "2027-01-01-twenty"
    folder.mkdir(parents=True)
    names = []
    for i in range(articles):
        name = f"article-{i:02d}.md"
        (folder / name).write_text(f"---\ntitle: Article number {i}\nauthor: Writer {i}\n---\n{body}",
                                   encoding="utf-8")
        names.append(name)
    listing = "".join(f"- {n}\n" for n in names)
    (folder / "issue.md").write_text(f"---\nsubject: Twenty\npreheader: Twenty articles\narticles:\n{listing}---\n\n"
                                     "Hi {{ subscriber.name | default('there') }}.\n", encoding="utf-8")
    return str(folder.relative_to(root))


def rendered_html(root: Path, issue: str, out: Path) -> Path:
    """The issue's HTML as rendered, before inlining: what premailer is given in a build."""
    sys.path.insert(0, str(REPO))
    from newsletter.compose.content import load_issue
    from newsletter.compose.render import render_issue
    from newsletter.config import load_settings

    settings = load_settings(root)
    out.write_text(render_issue(settings, load_issue(root / issue), None).html, encoding="utf-8")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="measured pairs per case (default 11)")
    args = parser.parse_args()
    compileall.compile_dir(str(REPO / "newsletter"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        work = Path(tmp)
        root = work / "letter"
        root.mkdir()
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
        for folder in ("templates", "subscribers", "issues"):
            shutil.copytree(REPO / folder, root / folder)
        env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        env["XDG_CACHE_HOME"] = str(work / "cache")
        os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]  # this process renders the baselines' HTML
        twenty = generated_issue(root, 20)
        alone = work / "premailer_alone.py"
        alone.write_text(PREMAILER_ALONE, encoding="utf-8")
        html = {issue: str(rendered_html(root, issue, work / f"{Path(issue).name}.html"))
                for issue in (EXAMPLE_ISSUE, twenty)}
        newsletter = newsletter_command()
        python = sys.executable
        pairs = [
            Pair("help", [*newsletter, "--help"], [python, "-c", "pass"], "python -c pass",
                 ratio_target=HELP_RATIO_TARGET),
            Pair("build, example issue", [*newsletter, "build", EXAMPLE_ISSUE],
                 [python, str(alone), html[EXAMPLE_ISSUE]], "premailer alone", ratio_target=BUILD_RATIO_TARGET),
            Pair("build, 20-article issue", [*newsletter, "build", twenty],
                 [python, str(alone), html[twenty]], "premailer alone", seconds_target=TWENTY_TARGET_SECONDS),
        ]
        print(f"{'case':<25}{'command s':>11}{'baseline':>18}{'baseline s':>12}{'ratio':>8}{'target':>10}  "
              f"(medians of {args.runs} runs, whole processes)")
        ok = True
        for pair in pairs:
            result = measure(pair, args.runs, root, env)
            ok &= result.met
            print(f"{pair.label:<25}{result.command_s:>11.3f}{pair.baseline_label:>18}{result.baseline_s:>12.3f}"
                  f"{result.ratio:>7.2f}x{result.target():>10}  {'met' if result.met else 'MISSED'}")
        print("targets met" if ok else "TARGET MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
