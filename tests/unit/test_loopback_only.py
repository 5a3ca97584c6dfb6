"""The test suite's network guard: loopback works, anything else fails before a packet leaves."""

from __future__ import annotations

import socket

import pytest

from local.webhook import WebhookSink


def test_a_connection_beyond_loopback_is_refused() -> None:
    with socket.socket() as s, pytest.raises(OSError, match="loopback"):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed


def test_loopback_connections_work() -> None:
    with WebhookSink() as sink:
        host, port = str(sink.server.server_address[0]), int(sink.server.server_address[1])
        with socket.create_connection((host, port), 2):
            pass
