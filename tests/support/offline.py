"""Run a Python module with no way off this machine: `python offline.py MODULE ARGS...`.

For tools that run in an interpreter of their own (checkov, in its own venv), where the test
suite's in-process loopback guard cannot reach. Every attempt to resolve a name or to connect
beyond loopback fails at once and is written to stderr as a line starting with `OFFLINE:`, so
a test can tell "nothing was downloaded" from "a download failed quietly". Standard library
only: it runs under whichever interpreter the tool was installed in."""

from __future__ import annotations

import os
import runpy
import socket
import sys

MARK = "OFFLINE:"
_LOOPBACK = ("127.", "::1", "localhost")


def _on_machine(host: object) -> bool:
    return host is None or str(host).startswith(_LOOPBACK)


def _refuse(what: str) -> OSError:
    print(f"{MARK} refused {what}", file=sys.stderr, flush=True)
    return OSError(f"offline: {what}")


def install() -> None:
    """Refuse name lookups and connections beyond loopback, for the rest of this process."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not _on_machine(host):
            raise _refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    def allowed(address: object) -> bool:
        if isinstance(address, tuple) and address:
            return _on_machine(address[0])
        return isinstance(address, str | bytes)  # AF_UNIX

    def connect(self: socket.socket, address: object) -> None:
        if not allowed(address):
            raise _refuse(f"connection to {address!r}")
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if not allowed(address):
            raise _refuse(f"connection to {address!r}")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python offline.py MODULE [ARGS...]")
    install()
    # As `python -m` does: the working directory first, not this file's folder.
    sys.path[0] = os.getcwd()
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
