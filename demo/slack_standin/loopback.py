"""Serving an ASGI app on loopback for a stand-in: uvicorn in a daemon thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class BackgroundServer:
    """An ASGI app served by uvicorn on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", **options: Any) -> None:
        """`options`: more `uvicorn.Config` settings (e.g. the WebSocket ping interval)."""
        self.app = app
        self.host = host
        self.options = options
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # Binding the socket here (port 0) gives the port before the server starts: no race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False,
                                **self.options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="asgi-test"
        )
        self._thread.start()
        self._wait_started(sock)

    def _wait_started(self, sock: socket.socket) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
