"""The send engine (``newsletter/sending/``) never imports the subscriber service (``newsletter/serve/``):
what a send needs of the service comes through ``sending/service.py``'s interface, which ``serve/``
implements and the commands pass in. The arrows point down, from the service to the send."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
SENDING = PACKAGE / "sending"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every module ``path`` imports, at the top or inside a function."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append((node.lineno, module))
            names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def test_imported_modules_resolves_relative_imports():
    engine = SENDING / "engine.py"
    assert any(name == "newsletter.sending.journal" for _, name in imported_modules(engine))
    assert any(name.startswith("newsletter.config") for _, name in imported_modules(engine))


def test_no_module_of_the_send_engine_imports_the_subscriber_service():
    upward = [f"{path.relative_to(PACKAGE)}:{line}: {name}" for path in sorted(SENDING.rglob("*.py"))
              for line, name in imported_modules(path)
              if name == "newsletter.serve" or name.startswith("newsletter.serve.")]
    assert not upward, upward
