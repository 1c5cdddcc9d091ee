"""A JSON-RPC proxy on loopback, in front of anvil: it counts, and it misbehaves on request.

It runs in its own thread (not on the test's event loop), so a test can await the code under
test while the proxy answers. Its URL carries a fake API key in the path, as a provider's URL
does, so tests can check that the key never leaks.

    with RpcProxy(anvil_url) as proxy:
        ...                      # point the code under test at proxy.url
        proxy.methods            # ["eth_call"]: JSON-RPC methods received, batches flattened
        proxy.connections        # TCP connections accepted
        proxy.mode = "http_error"  # answer every request with HTTP `proxy.status` from now on
        proxy.behind = 37        # answer as a node whose head is block 37 (see `RpcProxy`)
        proxy.aggregated         # [41]: calls inside each Multicall3 aggregate3 eth_call
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from eth_abi.abi import decode

from equity_daemon.venues.multicall import selector

Mode = Literal["forward", "stall", "http_error", "hang_up", "garbage", "rpc_error"]


class RpcProxy:
    """Forwards POSTs to `upstream`; `mode` decides how it answers (see the module doc).

    `stall` waits `stall_seconds` before forwarding; `http_error` answers HTTP `status`;
    `hang_up` closes the connection without answering; `garbage` answers an HTML page with 200;
    `rpc_error` answers a JSON-RPC error whose message echoes the URL and its key.

    With `behind` set, the proxy answers as a node that has not got past that block (anvil
    keeps every block's state, so older state is real): `eth_blockNumber` says `behind`, a
    call at a later block answers `header not found`, and `eth_getLogs` stops at `behind`
    without a word, as geth's does. With `behind_for` as well, only the HTTP requests that
    carry one of its methods go to that node: one URL load-balanced over nodes at different
    heights, the others answered by anvil's head.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.key = "k3y" + secrets.token_hex(12)
        self.mode: Mode = "forward"
        self.stall_seconds = 5.0
        self.status = 429
        self.behind: int | None = None
        self.behind_for: frozenset[str] = frozenset()
        self.methods: list[str] = []
        self.aggregated: list[int] = []
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v3/{self.key}"

    def reset(self) -> None:
        with self._lock:
            self.methods.clear()
            self.aggregated.clear()
            self.requests = 0

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _received(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        items = payload if isinstance(payload, list) else [payload]
        with self._lock:
            self.requests += 1
            self.methods.extend(
                str(item.get("method")) if isinstance(item, dict) else "?" for item in items
            )
            self.aggregated.extend(
                count for item in items if (count := _aggregate3_calls(item)) is not None
            )

    def _answer(self, body: bytes) -> tuple[int, str, bytes] | None:
        """Status, content type and body to answer; None to hang up."""
        if self.mode == "stall":
            self._released.wait(self.stall_seconds)
        elif self.mode == "hang_up":
            return None
        elif self.mode == "http_error":
            return self.status, "application/json", b'{"error": "no"}'
        elif self.mode == "garbage":
            return 200, "text/html", f"<html>{self.key} is over quota</html>".encode()
        elif self.mode == "rpc_error":
            request_id = json.loads(body).get("id")
            error = {"code": -32001, "message": f"project {self.key} over capacity at {self.url}"}
            return (
                200,
                "application/json",
                json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode(),
            )
        payload = json.loads(body)
        items = payload if isinstance(payload, list) else [payload]
        head = self.behind
        methods = {item.get("method") for item in items}
        if head is not None and (not self.behind_for or methods & self.behind_for):
            if isinstance(payload, list):
                answer: Any = [self._as_node_at(item, head) for item in payload]
            else:
                answer = self._as_node_at(payload, head)
            return 200, "application/json", json.dumps(answer).encode()
        forwarded = self._forward(body)
        return forwarded.status_code, "application/json", forwarded.content

    def _forward(self, body: bytes) -> httpx.Response:
        return httpx.post(
            self.upstream, content=body, headers={"Content-Type": "application/json"}, timeout=30
        )

    def _as_node_at(self, request: dict[str, Any], head: int) -> dict[str, Any]:
        """The answer of a node whose head is block `head` to one JSON-RPC request."""
        method, params = request.get("method"), list(request.get("params") or [])
        reply = {"jsonrpc": "2.0", "id": request.get("id")}
        if method == "eth_blockNumber":
            return reply | {"result": hex(head)}
        if method == "eth_call":
            tag = params[1] if len(params) > 1 else "latest"
            if not str(tag).startswith("0x"):
                params[1:] = [hex(head)]
            elif int(tag, 16) > head:
                return reply | {"error": {"code": -32000, "message": "header not found"}}
        if method == "eth_getLogs":
            query = dict(params[0])
            start = int(query.get("fromBlock", "0x0"), 16)
            if start > head:
                return reply | {"result": []}
            end = query.get("toBlock", "latest")
            query["toBlock"] = hex(head if not end.startswith("0x") else min(int(end, 16), head))
            params[0] = query
        answer: dict[str, Any] = self._forward(
            json.dumps({**request, "params": params}).encode()
        ).json()
        return answer


_AGGREGATE3 = selector("aggregate3((address,bool,bytes)[])")


def _aggregate3_calls(request: object) -> int | None:
    """How many calls an `eth_call` of Multicall3's `aggregate3` carries (None: another call)."""
    if not isinstance(request, dict) or request.get("method") != "eth_call":
        return None
    call = request["params"][0]
    data = bytes.fromhex(str(call.get("data") or call.get("input") or "").removeprefix("0x"))
    if data[:4] != _AGGREGATE3:
        return None
    (calls,) = decode(["(address,bool,bytes)[]"], data[4:])
    return len(calls)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: RpcProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that timed out and hung up is what some tests are about."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection counts mean something
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._proxy()._connected()

    def _proxy(self) -> RpcProxy:
        return self.server.proxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._proxy()._received(body)
        reply = self._proxy()._answer(body)
        if reply is None:
            self.close_connection = True
            return
        status, content_type, answer = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        """Quiet: the proxy's access log is its counters."""
