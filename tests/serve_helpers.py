"""Helpers for the subscriber service tests: settings edits, a uvicorn in a thread, list rows."""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path

import uvicorn

from newsletter.config import Settings, load_settings


def set_newsletter(root: Path, **values: str) -> None:
    """Replace ``key = ...`` lines of [newsletter] (they come before any other table in the example)."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert count == 1, key
    path.write_text(text, encoding="utf-8")


def set_serve(root: Path, **values: str) -> None:
    """Set keys of [serve] (the example's last table): TOML-literal values, replaced or appended."""
    path = root / "newsletter.toml"
    head, marker, serve = path.read_text(encoding="utf-8").partition("\n[serve]\n")
    assert marker, "the example newsletter.toml has a [serve] table"
    for key, value in values.items():
        serve, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", serve)
        if not count:
            serve = serve.rstrip("\n") + f"\n{key} = {value}\n"
    path.write_text(head + marker + serve, encoding="utf-8")


def settings_with(root: Path, database_url: str = "", **serve: str) -> Settings:
    if database_url:
        serve["database_url"] = f'"{database_url}"'
    set_serve(root, **serve)
    return load_settings(root)


def list_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {row["email"].lower(): row for row in csv.DictReader(handle)}


class ServiceThread:
    """The service under a real uvicorn on 127.0.0.1, port 0, in a background thread."""

    def __init__(self, app):

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, access_log=False,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServiceThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
