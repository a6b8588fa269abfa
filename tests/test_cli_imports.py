"""Start-up costs only what a command uses: the CLI module loads no heavy library, and a command loads only
the ones its work needs. Checked in a fresh interpreter, where sys.modules shows what was really imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("premailer", "lxml", "trafilatura", "dns", "PIL", "starlette", "uvicorn")


def _imported_by(code: str, cwd: Path | None = None) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    program = (f"{code}\n"
               "import json, sys\n"
               "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _imported_by("import newsletter.cli") & set(HEAVY) == set()


def test_help_imports_no_heavy_library_nor_the_settings() -> None:
    code = ("import contextlib, io, sys\n"
            "from newsletter.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['--help'])\n"
            "assert 'newsletter.config' not in sys.modules\n")
    assert _imported_by(code) & {*HEAVY, "email_validator", "jinja2", "markdown_it", "yaml"} == set()


def test_a_build_imports_what_building_needs_and_nothing_else(newsletter_root: Path) -> None:
    """premailer and lxml inline the CSS; the importer (trafilatura), the doctor (dnspython), the subscriber
    service (Starlette, uvicorn) and email-validator (no address is read) stay unloaded."""
    code = ("import contextlib, io\n"
            "from newsletter.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['build', 'issues/2026-11-25-first-dispatch'])\n")
    imported = _imported_by(code, cwd=newsletter_root)
    assert {"premailer", "lxml"} <= imported  # the build did run
    assert (newsletter_root / "build" / "2026-11-25-first-dispatch" / "email.html").is_file()
    assert imported & {"trafilatura", "dns", "starlette", "uvicorn", "email_validator", "playwright"} == set()
