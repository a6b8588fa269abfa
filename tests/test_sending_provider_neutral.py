"""No module outside ``newsletter/providers/`` knows a provider by name: what differs between providers
is asked of the provider's ``ProviderKind`` through the registry, so a new provider is one package in
``providers/`` plus its name in ``provider_names.py`` and its settings table in ``config.py``
(docs/architecture.md, "The provider contract").

Checked on the code, not the prose: identifiers and string literals, docstrings and comments left out
(they may name a provider as an example), and every import."""

from __future__ import annotations

import ast
from pathlib import Path

from newsletter.providers import registry

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
PROVIDER_WORDS = tuple(registry.NAMES)
# The provider contract and the provider-neutral parts of providers/: what the rest may import.
CONTRACT = {"newsletter.providers", "newsletter.providers.base", "newsletter.providers.contract",
            "newsletter.providers.registry", "newsletter.providers.names", "newsletter.providers.dryrun"}
ALLOWED = {
    # newsletter.toml's schema: each provider's settings table is declared with the file's other tables
    # (read by that provider's ProviderKind), and a new newsletter's file is written with them.
    "config.py": None,
    "scaffold.py": None,
    # the names newsletter.provider may take, below the settings (which check it) and the CLI (--provider)
    "provider_names.py": None,
    # the protocol, not the provider: the standard library's email policy for SMTP, email-validator's
    # switch for SMTPUTF8 addresses (RFC 6531), and RFC 8460's TLS-reporting record name
    "compose/message.py": {"SMTP"},
    "lists/address_keys.py": {"allow_smtputf8"},
    "doctor/sending_host.py": {"_smtp._tls."},
}


def _outside_providers() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "providers")


def _code_words(path: Path) -> list[tuple[int, str]]:
    """Identifiers and string literals of a module, its docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            words.append((node.lineno, node.arg))
        elif isinstance(node, ast.keyword) and node.arg:
            words.append((node.value.lineno, node.arg))
    return words


def _module_name(path: Path) -> str:
    return ".".join(("newsletter", *path.relative_to(PACKAGE).with_suffix("").parts))


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Every module ``path`` (the module named ``module``) imports, relative imports resolved,
    ``from X import y`` as X.y too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def test_no_module_outside_providers_names_a_provider():
    named = []
    for path in _outside_providers():
        where = path.relative_to(PACKAGE).as_posix()
        allowed = ALLOWED.get(where, set())
        if allowed is None:
            continue
        named += [f"{where}:{line}: {word!r}" for line, word in _code_words(path)
                  if any(p in word.lower() for p in PROVIDER_WORDS) and word not in allowed]
    assert not named, named


def test_no_module_outside_providers_imports_a_provider():
    reaching = [f"{path.relative_to(PACKAGE).as_posix()}:{line}: {target}"
                for path in _outside_providers() for line, target in _imports(path, _module_name(path))
                if target.startswith("newsletter.providers.") and target not in CONTRACT
                and target.rpartition(".")[0] not in CONTRACT - {"newsletter.providers"}]
    assert not reaching, reaching


def test_the_check_sees_what_it_is_meant_to_refuse(tmp_path):
    """The two checks above would find a provider named or imported (they cannot pass vacuously)."""
    module = tmp_path / "probe.py"
    module.write_text('"""SendGrid in a docstring is prose."""\nfrom ..providers.sendgrid import KIND\n'
                      'from ..providers.base import Status\n'
                      'if KIND.name == "smtp":\n    pass\n', encoding="utf-8")
    words = [word for _, word in _code_words(module) if any(p in word.lower() for p in PROVIDER_WORDS)]
    imports = [target for _, target in _imports(module, "newsletter.lists.probe")
               if target.startswith("newsletter.providers.")]
    assert words == ["smtp"]
    assert "newsletter.providers.sendgrid" in imports and "newsletter.providers.base.Status" in imports


def test_each_provider_says_which_refusals_are_hard_bounces():
    assert registry.is_hard_refusal("smtp", "SMTP 550 5.1.1 no such user")
    assert not registry.is_hard_refusal("smtp", "SMTP 452 4.2.2 mailbox full")
    assert not registry.is_hard_refusal("smtp", "the message could not be built: bad header")
    assert not registry.is_hard_refusal("sendgrid", "SMTP 550 looks like one but SendGrid reports bounces itself")


def test_every_provider_is_a_kind_under_its_own_name():
    for name in registry.NAMES:
        kind = registry.kind(name)
        assert kind.name == name and kind.title
        assert kind.capabilities.max_batch >= 1
