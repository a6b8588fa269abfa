"""The send engine (``newsletter/sending/``) knows no provider by name: what differs between providers is
asked of the provider registry, so a new provider is one module plus one line there."""

from __future__ import annotations

import ast
from pathlib import Path

from newsletter.providers import registry

SENDING = Path(__file__).resolve().parent.parent / "newsletter" / "sending"
PROVIDER_WORDS = tuple(registry.NAMES)


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
    return words


def test_no_provider_is_named_in_the_send_engines_code():
    named = [f"{path.name}:{line}: {word!r}" for path in sorted(SENDING.glob("*.py"))
             for line, word in _code_words(path) if any(p in word.lower() for p in PROVIDER_WORDS)]
    assert not named, named


def test_each_provider_says_which_refusals_are_hard_bounces():
    assert registry.is_hard_refusal("smtp", "SMTP 550 5.1.1 no such user")
    assert not registry.is_hard_refusal("smtp", "SMTP 452 4.2.2 mailbox full")
    assert not registry.is_hard_refusal("smtp", "the message could not be built: bad header")
    assert not registry.is_hard_refusal("sendgrid", "SMTP 550 looks like one but SendGrid reports bounces itself")
