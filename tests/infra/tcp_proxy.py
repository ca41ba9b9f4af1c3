"""A TCP proxy on 127.0.0.1 that a test can close, reopen, freeze and thaw: outages on demand.

Put in front of the test control plane's API server (TLS passes through untouched: the serving
certificate names 127.0.0.1, whatever the port), it plays the failures a real deployment meets:

| state | what a client sees |
|---|---|
| open | the upstream, byte for byte |
| closed | connection refused; every open connection is reset (an API server restart) |
| frozen | connections are accepted and nothing comes back; open ones stop moving (a hung server) |

`thaw()` lets held bytes through again, on the same connections; `open()` listens again on the same
port. One thread runs a selector loop; commands are applied by that thread, between two waits.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_CHUNK = 65536


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket | None = None

    def peer(self, sock: socket.socket) -> socket.socket | None:
        return self.upstream if sock is self.client else self.client


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.accepted = 0  # connections accepted, in all
        self.state = "open"
        self._listener: socket.socket | None = None
        self._port = 0
        self._pairs: list[_Pair] = []
        self._selector = selectors.DefaultSelector()
        self._commands: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)

    # --- control ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    def start(self) -> TcpProxy:
        self._listen()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(10)
        self._reset_all()
        if self._listener is not None:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    def close(self) -> None:
        """Refuse new connections and reset the open ones, until `open()`."""
        self._do(self._close)

    def open(self) -> None:
        """Listen again, on the same port."""
        self._do(self._open)

    def freeze(self) -> None:
        """Accept connections but pass no byte either way, until `thaw()`."""
        self._do(self._freeze)

    def thaw(self) -> None:
        self._do(self._thaw)

    @property
    def connections(self) -> int:
        """Connections open right now."""
        with self._lock:
            return len(self._pairs)

    # --- the loop's side ----------------------------------------------------------------------------

    def _do(self, command: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                command()
            finally:
                done.set()

        with self._lock:
            self._commands.append(run)
        self._wake()
        if not done.wait(10):
            raise TimeoutError("the proxy's loop did not take the command")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))
        listener.listen(128)
        listener.setblocking(False)
        self._port = listener.getsockname()[1]
        self._listener = listener

    def _close(self) -> None:
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._reset_all()
        self.state = "closed"

    def _open(self) -> None:
        if self._listener is None:
            self._listen()
            assert self._listener is not None
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        if self.state == "closed":
            self.state = "open"

    def _freeze(self) -> None:
        self.state = "frozen"
        for pair in self._pairs:
            for sock in self._sockets(pair):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)

    def _thaw(self) -> None:
        self.state = "open"
        for pair in list(self._pairs):
            if pair.upstream is None and not self._connect(pair):
                continue
            for sock in self._sockets(pair):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.register(sock, selectors.EVENT_READ, pair)

    @staticmethod
    def _sockets(pair: _Pair) -> Iterator[socket.socket]:
        yield pair.client
        if pair.upstream is not None:
            yield pair.upstream

    def _connect(self, pair: _Pair) -> bool:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._drop(pair, reset=True)
            return False
        upstream.setblocking(True)
        pair.upstream = upstream
        return True

    def _drop(self, pair: _Pair, *, reset: bool = False) -> None:
        for sock in self._sockets(pair):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            if reset:
                # SO_LINGER 0: close sends RST, as a dead server's kernel would.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)

    def _reset_all(self) -> None:
        for pair in list(self._pairs):
            self._drop(pair, reset=True)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        client.setblocking(True)
        pair = _Pair(client)
        with self._lock:
            self._pairs.append(pair)
            self.accepted += 1
        if self.state == "frozen":
            return  # held: accepted by the kernel, never answered
        if self._connect(pair):
            for sock in self._sockets(pair):
                self._selector.register(sock, selectors.EVENT_READ, pair)

    def _pump(self, sock: socket.socket, pair: _Pair) -> None:
        try:
            data = sock.recv(_CHUNK)
        except OSError:
            data = b""
        peer = pair.peer(sock)
        if not data or peer is None:
            self._drop(pair)
            return
        try:
            peer.sendall(data)
        except OSError:
            self._drop(pair)

    def _loop(self) -> None:
        if self._listener is not None:
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif sock is self._listener:
                    self._accept()
                elif isinstance(key.data, _Pair) and key.data in self._pairs:
                    assert isinstance(sock, socket.socket)
                    self._pump(sock, key.data)
            with self._lock:
                commands, self._commands = self._commands, []
            for command in commands:
                command()
