"""The project installs and runs anywhere: every import is declared, nothing is read from outside the
repository, and CI runs the README's own command before anything else is installed."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OWN_MODULES = {"newsletter", "conftest", "sendgrid_standin", "sendgrid_fixtures", "smtp_fixtures", "readme_command"}


def _imported_modules(*folders: str) -> dict[str, set[str]]:
    """Top-level names of every absolute import in the folders' Python files, with where each is."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normalise(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _third_party(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    local = OWN_MODULES | {path.stem for path in (REPO / "tests").glob("*.py")}
    return {name: where for name, where in imports.items()
            if name not in sys.stdlib_module_names and name not in local}


def _extras(project: dict) -> set[str]:
    """What the optional extras a user may install bring (``screenshot``: Playwright), not the test extra."""
    return {name for extra, requirements in project["optional-dependencies"].items() if extra != "test"
            for name in _declared(requirements)}


def test_every_imported_package_is_declared_directly_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _declared(project["dependencies"])
    everything = runtime | _extras(project) | _declared(project["optional-dependencies"]["test"])
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for folders, declared in ((("newsletter",), runtime | _extras(project)),
                              (("newsletter", "tests", "benchmarks"), everything)):
        for module, where in sorted(_third_party(_imported_modules(*folders)).items()):
            dists = {_normalise(d) for d in distributions.get(module, [module])}
            if not dists & declared:
                missing.append(f"{module} ({', '.join(sorted(dists))}) imported by {', '.join(sorted(where))}")
    assert not missing, "declare in pyproject.toml: " + "; ".join(sorted(set(missing)))


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names a module imports when it is imported (not inside functions, nor `if TYPE_CHECKING:`)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            body.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            body.extend([*node.body, *node.orelse, *node.finalbody])
    return names


def test_a_package_of_an_optional_extra_is_imported_only_where_it_is_used():
    """Without the extra, ``import newsletter.<anything>`` must still work; the command that needs the
    extra says which to install (screenshot.require_playwright)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = _extras(project) - _declared(project["dependencies"])
    distributions = importlib.metadata.packages_distributions()
    offenders = []
    for path in sorted((REPO / "newsletter").rglob("*.py")):
        for module in _module_level_imports(path):
            if {_normalise(d) for d in distributions.get(module, [module])} & optional:
                offenders.append(f"{path.relative_to(REPO)} imports {module} when it is imported")
    assert optional and not offenders, offenders


# The folder of reference material that sits beside a checkout; spelled in pieces so that this
# test, which looks for it, does not itself contain the path it forbids.
BESIDE = "sha" + "red"


def test_nothing_reads_files_beside_the_repository():
    offenders = []
    for folder in ("newsletter", "tests", "benchmarks", "scripts", ".ci", "docs", "README.md"):
        for path in [REPO / folder, *(REPO / folder).rglob("*")]:
            if path.is_file() and path.suffix not in {".pyc", ".png", ".jpg"} and path != Path(__file__):
                text = path.read_text(encoding="utf-8", errors="replace")
                if f"../{BESIDE}" in text or f"{BESIDE}/sendgrid" in text or f'"{BESIDE}"' in text:
                    offenders.append(str(path.relative_to(REPO)))
    assert not offenders


def test_sendgrid_schema_ships_with_the_tests_with_its_source_and_licence():
    sys.path.insert(0, str(REPO / "tests"))
    from sendgrid_standin import load_validator, schema_path

    folder = REPO / "tests" / "data" / "sendgrid"
    assert schema_path() == folder / "mail_send.schema.json"
    note = (folder / "README.md").read_text(encoding="utf-8")
    assert "github.com/sendgrid/sendgrid-oai" in note and "MIT" in note and "Errata" in note
    validator = load_validator()
    assert list(validator.iter_errors({"personalizations": [{"to": [{"email": "a@example.com"}]}],
                                       "from": {"email": "b@example.com"}, "subject": "Hi",
                                       "content": [{"type": "text/plain", "value": "x"}]})) == []
    assert list(validator.iter_errors({"from": {"email": "b@example.com"}}))


def _readme_blocks() -> list[str]:
    sys.path.insert(0, str(REPO / ".ci"))
    from readme_command import code_blocks

    return code_blocks((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_starts_with_the_two_commands_for_a_fresh_machine():
    main_job, tests = _readme_blocks()[:2]
    assert main_job.startswith("python3 -m venv .venv && .venv/bin/pip install -q -e . && ")
    assert "newsletter build" in main_job and "--dry-run" in main_job
    assert tests == "bash .ci/run"


def test_ci_runs_the_readme_command_as_written_before_installing_the_test_extras():
    printed = subprocess.run([sys.executable, str(REPO / ".ci" / "readme_command.py")], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed == _readme_blocks()[0]
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "upgrade" not in script  # the pip that `python3 -m venv` ships, as a reader has it
    steps = ["rm -rf .venv", "readme_command.py", '-c "$readme_command"', '"$newsletter" init',
             '"$newsletter" import', "tests/data/import/page.html", '-e ".[test,lint]"', ".venv/bin/ruff check",
             ".venv/bin/mypy", "-m pytest"]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p == -1]
    assert positions == sorted(positions)
