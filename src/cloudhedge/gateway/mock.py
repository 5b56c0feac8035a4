"""An OpenAI-compatible mock upstream with faults, and loopback servers for tests and demos.

The mock is a small asyncio HTTP/1.1 server (httptools parser; keep-alive; pipelined
requests answered in order), not an ASGI app: it is the upstream in throughput
benchmarks, so it must cost far less than the gateway it measures, and its faults act on
the socket itself (a reset is a TCP RST, a hang holds the connection open).

    POST /v1/chat/completions   stream or not; ``usage``; ``stream_options.include_usage``
    POST /v1/completions        likewise
    POST /v1/embeddings         ``encoding_format`` float (default) or base64
    GET  /v1/models
    POST /_mock/fault           {"mode", "count"?, "retry_after_s"?, "chunks"?}
    GET  /_mock/stats           {"name", "requests", "by_endpoint", "faults", "fault"}

A fault applies to the next ``count`` API requests (every one when ``count`` is absent):

    none        answer normally
    error500    HTTP 500 with an OpenAI error body
    error429    HTTP 429 with ``Retry-After: retry_after_s``
    reset       drop the connection with a TCP RST, nothing answered
    hang        never answer (until the client gives up)
    cut_after   a stream is closed after ``chunks`` SSE events, without ``[DONE]`` and
                without the chunked terminator; a non-stream body is closed half-sent

Responses are shaped by :class:`MockSettings`: latency to first byte (faults included),
tokens per second for streams (0: no pacing), output tokens per response (capped by the
request's ``max_tokens``). Prompt tokens are the words of the prompt.

Running one: :class:`MockServer` (background thread; a context manager giving its base
URL, e.g. ``http://127.0.0.1:PORT/v1``), :func:`serve_mock` (in a running loop),
:func:`run_mock` (blocking, for ``cloudhedge mock-upstream``). :class:`AppServer` runs
any ASGI app (the gateway) under uvicorn on loopback in a background thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import socket
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, cast

import httptools
import orjson
import uvicorn

_HTTP_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found",
                 405: b"Method Not Allowed", 429: b"Too Many Requests",
                 500: b"Internal Server Error"}
_API = {b"/v1/chat/completions": ("chat", b"POST"), b"/v1/completions": ("completions", b"POST"),
        b"/v1/embeddings": ("embeddings", b"POST"), b"/v1/models": ("models", b"GET")}
_JSON = b"application/json"


class FaultMode(StrEnum):
    NONE = "none"
    ERROR500 = "error500"
    ERROR429 = "error429"
    RESET = "reset"
    HANG = "hang"
    CUT_AFTER = "cut_after"


@dataclass(frozen=True)
class Fault:
    """A fault and the number of API requests it applies to (None: all of them)."""

    mode: FaultMode = FaultMode.NONE
    count: int | None = None
    retry_after_s: float = 1.0  # error429
    chunks: int = 1  # cut_after: SSE events sent before the cut

    @classmethod
    def from_json(cls, obj: object) -> Fault:
        """Validate ``POST /_mock/fault``'s body; raises ValueError."""
        if not isinstance(obj, dict) or not set(obj) <= {"mode", "count", "retry_after_s",
                                                           "chunks"}:
            raise ValueError("expected {mode, count?, retry_after_s?, chunks?}")
        count, retry_after, chunks = obj.get("count"), obj.get("retry_after_s", 1.0), obj.get(
            "chunks", 1)
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be an integer >= 0")
        if not isinstance(retry_after, int | float) or retry_after < 0:
            raise ValueError("retry_after_s must be a number >= 0")
        if not isinstance(chunks, int) or chunks < 0:
            raise ValueError("chunks must be an integer >= 0")
        return cls(FaultMode(obj.get("mode", "none")), count, float(retry_after), chunks)


@dataclass(frozen=True)
class MockSettings:
    """How a mock answers."""

    name: str = "mock"  # in stats, ``system_fingerprint`` and the ``x-mock-name`` header
    latency_ms: float = 0.0  # before the first byte of every API answer
    tokens_per_s: float = 0.0  # stream pacing; 0: as fast as possible
    output_tokens: int = 16  # per response, at most the request's max_tokens
    embedding_dim: int = 8
    models: tuple[str, ...] = ("mock",)  # listed by GET /v1/models (any model is served)


class MockUpstream:
    """A mock's state, shared by its connections: settings, the current fault, counters."""

    def __init__(self, settings: MockSettings | None = None) -> None:
        self.settings = settings or MockSettings()
        self.connections: set[_Connection] = set()
        self._fault = Fault()
        self._left: int | None = None
        self._requests = 0
        self._by_endpoint: Counter[str] = Counter()
        self._faults = 0
        self._ids = itertools.count(1)
        self._name_header = b"x-mock-name: " + self.settings.name.encode() + b"\r\n"

    def set_fault(self, fault: Fault) -> None:
        """Apply ``fault`` to the next ``fault.count`` API requests."""
        self._fault, self._left = fault, fault.count

    def stats(self) -> dict[str, Any]:
        """Requests served (by endpoint), faults injected and the current fault."""
        fault = asdict(self._fault) | {"left": self._left}
        return {"name": self.settings.name, "requests": self._requests,
                "by_endpoint": dict(self._by_endpoint), "faults": self._faults, "fault": fault}

    def _take_fault(self) -> Fault | None:
        fault = self._fault
        if fault.mode is FaultMode.NONE or self._left == 0:
            return None
        if self._left is not None:
            self._left -= 1
        self._faults += 1
        return fault

    def _count(self, endpoint: str) -> str:
        self._requests += 1
        self._by_endpoint[endpoint] += 1
        return f"{self.settings.name}-{next(self._ids)}"

    def reset_all(self) -> None:
        """Drop every open connection with a TCP RST (the upstream "dies")."""
        for conn in list(self.connections):
            conn.reset()


# -- response bodies -------------------------------------------------------------------


def _words(x: object) -> int:
    if isinstance(x, str):
        return len(x.split())
    if isinstance(x, list):
        return sum(_words(i) for i in x)
    if isinstance(x, dict):
        return _words(x.get("content")) + _words(x.get("text"))
    return 1 if isinstance(x, int) else 0


def _prompt_tokens(endpoint: str, payload: dict[str, Any]) -> int:
    field = {"chat": "messages", "completions": "prompt"}.get(endpoint, "input")
    return max(1, _words(payload.get(field)))


def _output_tokens(settings: MockSettings, payload: dict[str, Any]) -> int:
    cap = payload.get("max_completion_tokens") or payload.get("max_tokens")
    n = settings.output_tokens
    return min(n, cap) if isinstance(cap, int) and cap > 0 else n


def _usage(n_in: int, n_out: int) -> dict[str, int]:
    return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}


def _token(i: int) -> str:
    return f"t{i} "


def _completion(settings: MockSettings, endpoint: str, rid: str, model: str,
                payload: dict[str, Any]) -> dict[str, Any]:
    n_in, n_out = _prompt_tokens(endpoint, payload), _output_tokens(settings, payload)
    text = "".join(_token(i) for i in range(n_out))
    choice: dict[str, Any]
    if endpoint == "chat":
        obj, choice = "chat.completion", {"index": 0, "finish_reason": "stop", "logprobs": None,
                                          "message": {"role": "assistant", "content": text}}
    else:
        obj, choice = "text_completion", {"index": 0, "finish_reason": "stop", "logprobs": None,
                                          "text": text}
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model,
            "system_fingerprint": settings.name, "choices": [choice],
            "usage": _usage(n_in, n_out)}


def _embedding(settings: MockSettings, model: str, payload: dict[str, Any]) -> dict[str, Any]:
    raw = payload.get("input")
    items: list[object] = (raw if isinstance(raw, list) and raw and not isinstance(raw[0], int)
                           else [raw])
    as_base64 = payload.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(items):
        seed = zlib.crc32(orjson.dumps(item))
        vec = [((seed >> (j % 24)) % 1000) / 1000.0 for j in range(settings.embedding_dim)]
        emb: object = (base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
                       if as_base64 else vec)
        data.append({"object": "embedding", "index": i, "embedding": emb})
    n_in = max(1, _words(raw))
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": n_in, "total_tokens": n_in}}


def _error(message: str, type_: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None,
                                   "code": code}})


# -- HTTP/1.1 --------------------------------------------------------------------------


def _response(status: int, body: bytes, keep_alive: bool, extra: bytes = b"",
              content_type: bytes = _JSON) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n" % (
        status, _HTTP_REASONS.get(status, b"Status"), content_type, len(body), extra,
        b"" if keep_alive else b"connection: close\r\n")
    return head + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Request:
    __slots__ = ("body", "keep_alive", "method", "path")

    def __init__(self, method: bytes, path: bytes, body: bytes, keep_alive: bool) -> None:
        self.method, self.path, self.body, self.keep_alive = method, path, body, keep_alive


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them one at a time, in order."""

    def __init__(self, mock: MockUpstream) -> None:
        self._mock = mock
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._pending: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._mock.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._mock.connections.discard(self)
        self._transport = None
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_response(400, _error("malformed HTTP request", "invalid_request_error",
                                              "bad_request"), False))
            self._close()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        req = _Request(self._parser.get_method(), self._url.split(b"?", 1)[0],
                       b"".join(self._body), self._parser.should_keep_alive())
        if self._task is not None:
            self._pending.append(req)
        else:
            self._handle(req)

    # answering

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def _handle(self, req: _Request) -> None:
        answer = self._dispatch(req)
        if isinstance(answer, bytes):
            self._write(answer)
            if not req.keep_alive:
                self._close()
            return
        self._task = asyncio.get_running_loop().create_task(self._run(answer, req.keep_alive))

    async def _run(self, answer: Coroutine[Any, Any, None], keep_alive: bool) -> None:
        await answer
        self._task = None
        if not keep_alive:
            self._close()
        while self._pending and self._task is None:
            self._handle(self._pending.popleft())

    def _dispatch(self, req: _Request) -> bytes | Coroutine[Any, Any, None]:
        """The full answer when it needs no waiting, else a coroutine that writes it."""
        if req.path.startswith(b"/_mock/"):
            return self._control(req)
        route = _API.get(req.path)
        if route is None:
            return _response(404, _error(f"no route {req.path.decode(errors='replace')}",
                                         "invalid_request_error", "not_found"), req.keep_alive)
        endpoint, method = route
        if req.method != method:
            return _response(405, _error("method not allowed", "invalid_request_error",
                                         "method_not_allowed"), req.keep_alive)
        mock = self._mock
        rid = mock._count(endpoint)
        fault = mock._take_fault()
        payload: dict[str, Any] = {}
        if method == b"POST":
            try:
                parsed = orjson.loads(req.body)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return _response(400, _error("body must be a JSON object",
                                             "invalid_request_error", "invalid_json"),
                                 req.keep_alive)
            payload = parsed
        stream = endpoint in ("chat", "completions") and payload.get("stream") is True
        if fault is None and not mock.settings.latency_ms and not stream:
            return _response(200, self._body_of(endpoint, rid, payload), req.keep_alive,
                             mock._name_header)
        return self._slow(req, endpoint, rid, payload, stream, fault)

    def _body_of(self, endpoint: str, rid: str, payload: dict[str, Any]) -> bytes:
        s = self._mock.settings
        model = str(payload.get("model", s.models[0] if s.models else "mock"))
        if endpoint == "models":
            return orjson.dumps({"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": s.name}
                for m in s.models]})
        if endpoint == "embeddings":
            return orjson.dumps(_embedding(s, model, payload))
        return orjson.dumps(_completion(s, endpoint, rid, model, payload))

    async def _slow(self, req: _Request, endpoint: str, rid: str, payload: dict[str, Any],
                    stream: bool, fault: Fault | None) -> None:
        s = self._mock.settings
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        mode = fault.mode if fault is not None else FaultMode.NONE
        if mode is FaultMode.ERROR500:
            self._write(_response(500, _error("mock fault: internal error", "server_error",
                                              "mock_error500"), req.keep_alive))
        elif mode is FaultMode.ERROR429:
            assert fault is not None
            self._write(_response(429, _error("mock fault: rate limited", "rate_limit_error",
                                              "rate_limit_exceeded"), req.keep_alive,
                                  b"retry-after: %g\r\n" % fault.retry_after_s))
        elif mode is FaultMode.RESET:
            self.reset()
        elif mode is FaultMode.HANG:
            await asyncio.get_running_loop().create_future()  # until the connection is lost
        elif stream:
            cut = fault.chunks if fault is not None else None
            await self._stream(endpoint, rid, payload, cut)
        else:
            answer = _response(200, self._body_of(endpoint, rid, payload), req.keep_alive,
                               self._mock._name_header)
            if fault is None:
                self._write(answer)
            else:  # cut_after: half the answer, then close
                self._write(answer[: len(answer) - max(1, len(answer) // 4)])
                self._close()

    async def _stream(self, endpoint: str, rid: str, payload: dict[str, Any],
                      cut: int | None) -> None:
        s = self._mock.settings
        n_in, n_out = _prompt_tokens(endpoint, payload), _output_tokens(s, payload)
        options = payload.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        model, created = str(payload.get("model", "mock")), int(time.time())
        chat = endpoint == "chat"
        obj = "chat.completion.chunk" if chat else "text_completion"
        base: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": model,
                                "system_fingerprint": s.name}
        if with_usage:
            base["usage"] = None
        self._write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
                    + self._mock._name_header + b"\r\n")
        delay = 1.0 / s.tokens_per_s if s.tokens_per_s > 0 else 0.0
        events: list[dict[str, Any] | None] = []
        for i in range(n_out):
            if chat:
                delta = {"role": "assistant", "content": _token(i)} if i == 0 else {
                    "content": _token(i)}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            else:
                choice = {"index": 0, "text": _token(i), "finish_reason": None,
                          "logprobs": None}
            events.append(base | {"choices": [choice]})
        last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            last["delta"] = {}
        else:
            last["text"] = ""
        events.append(base | {"choices": [last]})
        if with_usage:
            events.append(base | {"choices": [], "usage": _usage(n_in, n_out)})
        events.append(None)  # [DONE]
        for sent, event in enumerate(events):
            if cut is not None and sent >= cut:
                await asyncio.sleep(0.01)  # let the client read what was sent, then cut
                self._close()
                return
            data = b"[DONE]" if event is None else orjson.dumps(event)
            self._write(_chunk(b"data: " + data + b"\n\n"))
            if delay and event is not None:
                await asyncio.sleep(delay)
        self._write(b"0\r\n\r\n")

    def _control(self, req: _Request) -> bytes:
        mock = self._mock
        if req.path == b"/_mock/stats" and req.method == b"GET":
            return _response(200, orjson.dumps(mock.stats()), req.keep_alive)
        if req.path == b"/_mock/fault" and req.method == b"POST":
            try:
                fault = Fault.from_json(orjson.loads(req.body))
            except (ValueError, orjson.JSONDecodeError) as e:
                return _response(400, _error(f"bad fault: {e}", "invalid_request_error",
                                             "bad_fault"), req.keep_alive)
            mock.set_fault(fault)
            return _response(200, orjson.dumps(mock.stats()), req.keep_alive)
        return _response(404, _error("no such control endpoint", "invalid_request_error",
                                     "not_found"), req.keep_alive)


# -- running ---------------------------------------------------------------------------


async def serve_mock(mock: MockUpstream, host: str = "127.0.0.1", port: int = 0
                     ) -> asyncio.Server:
    """Start serving ``mock`` in the running loop; the caller closes the server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(mock), host, port, backlog=2048)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_mock(settings: MockSettings, host: str = "127.0.0.1", port: int = 9101,
             on_ready: Callable[[str], None] | None = None) -> None:
    """Serve a mock until interrupted (uvloop when available); ``on_ready(base_url)``."""

    async def main() -> None:
        server = await serve_mock(MockUpstream(settings), host, port)
        bound = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}/v1")
        async with server:
            await server.serve_forever()

    loop = _new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


class MockServer:
    """A mock upstream on loopback in a background thread.

    ``with MockServer(name="azure") as base_url:`` serves until the block ends. ``stop()``
    kills it (listener closed, connections reset) and ``start()`` brings it back on the
    same port; ``fault(...)`` and ``stats()`` act on it from any thread.
    """

    def __init__(self, *, name: str = "mock", host: str = "127.0.0.1", port: int = 0,
                 latency_ms: float = 0.0, tokens_per_s: float = 0.0,
                 output_tokens: int = 16) -> None:
        self.host, self.port = host, port
        self.upstream = MockUpstream(MockSettings(name=name, latency_ms=latency_ms,
                                                  tokens_per_s=tokens_per_s,
                                                  output_tokens=output_tokens))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def _call(self, fn: Callable[[], Any]) -> Any:
        assert self._loop is not None, "the mock server is not started"

        async def call() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def start(self) -> str:
        """Serve (again, on the same port once it is known); returns the base URL."""
        if self._loop is None:
            loop = self._loop = _new_loop()
            self._thread = threading.Thread(target=loop.run_forever, daemon=True,
                                            name=f"mock-{self.upstream.settings.name}")
            self._thread.start()
        if self._server is None:
            self._server = self._call(lambda: serve_mock(self.upstream, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
        return self.base_url

    def stop(self) -> None:
        """Kill it: stop listening and reset every connection (new ones are refused)."""
        server, self._server = self._server, None
        if server is not None:
            self._call(server.close)
            self._call(self.upstream.reset_all)
            self._call(lambda: asyncio.sleep(0))  # let the cancelled answers unwind

    def close(self) -> None:
        """Stop and end the background thread."""
        self.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = self._thread = None

    def fault(self, mode: FaultMode | str, *, count: int | None = None,
              retry_after_s: float = 1.0, chunks: int = 1) -> None:
        """Apply a fault to the next ``count`` API requests (all when None)."""
        fault = Fault(FaultMode(mode), count, retry_after_s, chunks)
        self._call(lambda: self.upstream.set_fault(fault))

    def stats(self) -> dict[str, Any]:
        """Like ``GET /_mock/stats``."""
        result: dict[str, Any] = self._call(self.upstream.stats)
        return result

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


class AppServer:
    """An ASGI app served by uvicorn (httptools) on loopback in a background thread.

    ``with AppServer(app) as url:`` gives ``http://127.0.0.1:PORT`` once it accepts
    connections (lifespan started); leaving the block shuts it down gracefully.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self.host, self.port = host, port
        self._config = uvicorn.Config(app, host=host, port=port, lifespan="on",
                                      http="httptools", log_level=log_level, access_log=False)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        server = self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        daemon=True, name="app-server")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app server did not start (see the logs)")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
