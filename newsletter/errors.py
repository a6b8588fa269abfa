"""The one exception a user can cause, and the exit codes it maps to.

Every error a writer can trigger (a bad file, a bad address, a missing
setting, a provider refusal) is a NewsletterError whose message says where
(file, line, field, host), what is wrong, and how to fix it. The CLI prints
the message without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations

import errno
from pathlib import Path

from .redaction import redact

EXIT_OK = 0
EXIT_FAILED = 1  # checks found errors, or some recipients failed
EXIT_USAGE = 2  # usage or input error


class NewsletterError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message to show."""

    exit_code = EXIT_USAGE
    report = None  # a send that stopped on this error: its SendReport so far, for the summary (sending/engine.py)

    def __init__(self, message: str, *, where: str | Path | None = None, line: int | None = None, hint: str | None = None):
        self.where = str(where) if where is not None else None
        self.line = line
        # a secret this process holds never shows, even when a server's answer quoted it (redaction.py)
        self.hint = redact(hint) if hint else hint
        self.reason = redact(message)
        super().__init__(redact(self._compose()))

    def __reduce__(self):
        """Pickle with every attribute (hint, status, errors...): a worker process hands errors back by pipe."""
        return _restore, (type(self), self.args, self.__dict__.copy())

    def _compose(self) -> str:
        text = self.reason
        if self.where:
            location = self.where if self.line is None else f"{self.where}:{self.line}"
            text = f"{location}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


def _restore(cls: type, args: tuple, state: dict) -> NewsletterError:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class SendFailed(NewsletterError):
    """A send that ran but could not deliver to every recipient."""

    exit_code = EXIT_FAILED


_OS_HINTS = {
    errno.EACCES: "check who may read and write it: ls -ld {where}",
    errno.EPERM: "check who may read and write it: ls -ld {where}",
    errno.EISDIR: "a folder is where a file should be; move it out of the way",
    errno.ENOTDIR: "a file is where a folder should be (a part of this path is a file); move it out of the way",
    errno.EEXIST: "something is already there where a folder should be; move it out of the way",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "the disk is full; free some space, then run the same command again",
    errno.EDQUOT: "the disk quota is used up; free some space, then run the same command again",
    errno.EROFS: "the file system is read-only; choose a folder you can write to",
    errno.ELOOP: "a symbolic link here points to itself; fix or remove it",
}


def os_error(err: OSError, path: str | Path | None = None, action: str = "read or write") -> NewsletterError:
    """The NewsletterError for a file the system would not read or write: the path, what the system
    said, and what to do, instead of a traceback (permissions, a folder in place of a file, a full disk)."""
    target = path if path is not None else err.filename
    where = display_path(target) if target is not None else None
    reason = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno or 0, "check the file and the disk it is on")
    return NewsletterError(f"cannot {action} ({reason})", where=where, hint=hint.format(where=where or "."))


def display_path(path: str | Path) -> str:
    """Show a path relative to the working directory when it lies below it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
