"""A Slack-compatible incoming webhook on 127.0.0.1: records every post and answers as told
(200 "ok", 429 with Retry-After, 5xx, 4xx with Slack's error text, or no HTTP at all)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The path a real webhook has: it is the secret part of the URL.
SECRET_PATH = "/services/T0TESTTEAM/B0TESTHOOK/s3cr3tW3bh00kT0k3n"  # noqa: S105 - a stand-in


@dataclass
class Post:
    at: float
    path: str
    body: dict[str, Any]
    status: int


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow or hanging Slack)."""
    raw: bytes | None = None
    """Bytes to answer with instead of HTTP (something else listening); recorded as status 0."""


class WebhookSink:
    def __init__(self, on_post: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`on_post` sees every post Slack would accept (what on-call would see)."""
        self.on_post = on_post
        self.posts: list[Post] = []
        self.answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with sink._lock:
                    answer = sink.answers.popleft() if sink.answers else Answer()
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = {"unparseable": raw.decode(errors="replace")}
                    status = 0 if answer.raw is not None else answer.status
                    sink.posts.append(Post(time.monotonic(), self.path, body, status))
                if self.path != SECRET_PATH:
                    answer = Answer(404, "no_service")
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.raw is not None:
                    self.wfile.write(answer.raw)
                    self.close_connection = True
                    return
                if sink.on_post is not None and answer.status == 200:
                    sink.on_post(body)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                data = answer.body.encode()
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{SECRET_PATH}"

    def answer(self, *answers: Answer) -> None:
        """Queue the next answers; after them, 200 "ok"."""
        with self._lock:
            self.answers.extend(answers)

    def ok_posts(self) -> list[Post]:
        return [p for p in self.posts if p.status == 200]

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
