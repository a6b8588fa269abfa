"""Print the README's main-job command (its first ```sh block), so CI runs exactly what a reader copies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """The ```sh blocks of a Markdown text, in order, without their fences."""
    return [block.strip() for block in BLOCK.findall(text)]


if __name__ == "__main__":
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    if not blocks:
        sys.exit(f"{README}: no ```sh code block holds the main-job command")
    print(blocks[0])
