"""The errors the CLI expects, each said in one line with an exit code (never a traceback)."""

from __future__ import annotations


class CliError(Exception):
    """An expected failure: its message is printed as one line and the command exits `code`."""

    code = 1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(CliError):
    """No such stack, lock or queue."""

    code = 2


class Refused(CliError):
    """The command would break a promise of the lock (release a live holder, start beside one)
    unless asked to."""

    code = 3
