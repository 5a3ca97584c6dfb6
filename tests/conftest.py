"""Shared fixtures: fake credentials, so nothing can ever reach a real AWS account."""

from __future__ import annotations

import os

import pytest

from local.template import load_template

# Powertools reads the metrics namespace when a handler module is first imported, as Lambda
# does under the template's environment: whichever test imports a handler first, in whatever
# order pytest-xdist runs them, it is the template's namespace.
os.environ.setdefault(
    "POWERTOOLS_METRICS_NAMESPACE",
    load_template()["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ],
)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


class NetworkDenied(OSError):
    """A test tried to reach beyond this machine."""


_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection a test makes stays on this machine: a connect() anywhere else fails
    at once (moto intercepts AWS calls before any socket is opened)."""
    import socket

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(address: object) -> bool:
        if isinstance(address, tuple) and address:
            return str(address[0]) in _LOOPBACK_HOSTS or str(address[0]).startswith("127.")
        return isinstance(address, str | bytes)  # AF_UNIX

    def connect(self: socket.socket, address: object) -> None:
        if not allowed(address):
            raise NetworkDenied(f"tests may only connect to loopback, not {address!r}")
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if not allowed(address):
            raise NetworkDenied(f"tests may only connect to loopback, not {address!r}")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
