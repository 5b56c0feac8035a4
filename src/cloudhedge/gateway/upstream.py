"""Talking to upstreams: pooled sessions, one attempt, and the SSE relay.

    Upstreams      one aiohttp ClientSession (keep-alive pool) per upstream base URL
    Target         a deployment prepared for sending: parsed URLs, headers, prices
    upstream_body  the body sent upstream (model renamed, usage asked for in streams)
    send()         one non-streaming attempt -> Reply (2xx or a 4xx to pass on) or AttemptError
    open_stream()  one streaming attempt up to its first bytes -> StreamStart, Reply or
                   AttemptError; nothing has reached the client yet, so failover stays
                   invisible
    SSERelay       re-frames the rest of a stream into whole events, takes the usage,
                   strips the usage chunk when the client did not ask for it, notes [DONE]

Failures that another deployment may fix raise :class:`AttemptError` (kind by exception
type or status, never by message): connection errors, no first byte within the timeout,
5xx, 429 (with Retry-After), a malformed 200. A 4xx other than 429 is the client's fault
and comes back as a :class:`Reply` to pass on unchanged.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from cloudhedge.gateway.config import Deployment, Endpoint
from cloudhedge.gateway.errors import AttemptError, FailureKind

PATHS = {Endpoint.CHAT: "/chat/completions", Endpoint.COMPLETIONS: "/completions",
         Endpoint.EMBEDDINGS: "/embeddings"}  # below an OpenAI base URL ending in /v1
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DONE = re.compile(rb"^data:\s*\[DONE\]", re.MULTILINE)


class Target:
    """A deployment prepared once per configuration for the hot path."""

    __slots__ = ("deployment", "headers", "models_url", "timeout", "urls", "usd_per_input",
                 "usd_per_output")

    def __init__(self, d: Deployment) -> None:
        base = d.base_url.rstrip("/")
        self.deployment = d
        self.urls = {e: URL(base + p) for e, p in PATHS.items()}
        self.models_url = URL(base + "/models")
        self.headers = {"Content-Type": "application/json"}
        if d.api_key:
            self.headers["Authorization"] = f"Bearer {d.api_key}"
        # Between reads once the first byte is in; the first byte has its own deadline.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=d.timeout_s,
                                             sock_read=d.timeout_s)
        self.usd_per_input = d.input_usd_per_million / 1e6
        self.usd_per_output = d.output_usd_per_million / 1e6

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.usd_per_input + output_tokens * self.usd_per_output


class Upstreams:
    """One ClientSession (a keep-alive connection pool) per upstream base URL."""

    def __init__(self, *, pool_size: int = 1000) -> None:
        self._pool_size = pool_size
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, base_url: str) -> aiohttp.ClientSession:
        """The session for ``base_url``, created on first use (inside the event loop)."""
        s = self._sessions.get(base_url)
        if s is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300,
                                             keepalive_timeout=30)
            s = self._sessions[base_url] = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding",))
        return s

    async def close(self, base_urls: Iterable[str] | None = None) -> None:
        """Close the sessions of ``base_urls`` (all when None)."""
        names = list(self._sessions) if base_urls is None else list(base_urls)
        for name in names:
            s = self._sessions.pop(name, None)
            if s is not None:
                await s.close()


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole upstream answer: a success, or a client error to pass on as it came."""

    status: int
    content_type: str
    body: bytes
    ttfb_s: float  # time to the response headers


@dataclass(frozen=True, slots=True)
class StreamStart:
    """A stream whose first bytes arrived: from here on, nothing can fail over."""

    response: aiohttp.ClientResponse
    first: bytes
    ttfb_s: float  # time to the first bytes of the body (the first token, in practice)


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _upstream_message(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
        message = obj["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
    return str(message)[:200]


def _failure(d: Deployment, status: int, headers: Mapping[str, str], body: bytes
             ) -> AttemptError | None:
    """The AttemptError for a status another deployment may fix (429, 5xx), else None."""
    if status == 429:
        wait = retry_after_s(headers.get("Retry-After"))
        after = f", retry after {wait:g} s" if wait is not None else ""
        return AttemptError(d.name, FailureKind.RATE_LIMITED,
                            f"HTTP 429{after}: {_upstream_message(body)}", status=429,
                            retry_after_s=wait)
    if status >= 500:
        return AttemptError(d.name, FailureKind.SERVER_ERROR,
                            f"HTTP {status}: {_upstream_message(body)}", status=status)
    return None


def _translate(d: Deployment, e: BaseException, timeout_s: float) -> AttemptError:
    """An exception raised while waiting for the first byte, as an AttemptError."""
    if isinstance(e, TimeoutError):
        return AttemptError(d.name, FailureKind.TIMEOUT, f"no first byte within {timeout_s:g} s")
    if isinstance(e, aiohttp.ClientConnectorError):
        return AttemptError(d.name, FailureKind.CONNECT, f"cannot connect: {e.os_error}")
    if isinstance(e, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return AttemptError(d.name, FailureKind.PROTOCOL, f"malformed response: {e}")
    return AttemptError(d.name, FailureKind.CONNECT,
                        f"connection failed: {type(e).__name__}: {e}".rstrip(": "))


async def send(session: aiohttp.ClientSession, target: Target, endpoint: Endpoint,
               body: bytes, headers: Mapping[str, str], timeout_s: float) -> Reply:
    """One non-streaming attempt, bounded by ``timeout_s`` as a whole."""
    d = target.deployment
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s), session.post(
                target.urls[endpoint], data=body, headers=headers,
                timeout=target.timeout) as resp:
            ttfb = time.perf_counter() - t0
            data = await resp.read()
            status, resp_headers = resp.status, resp.headers
    except (aiohttp.ClientError, TimeoutError) as e:
        raise _translate(d, e, timeout_s) from e
    failure = _failure(d, status, resp_headers, data)
    if failure is not None:
        raise failure
    return Reply(status, resp_headers.get("Content-Type", "application/json"), data, ttfb)


async def open_stream(session: aiohttp.ClientSession, target: Target, endpoint: Endpoint,
                      body: bytes, headers: Mapping[str, str], timeout_s: float
                      ) -> StreamStart | Reply:
    """One streaming attempt, up to the first bytes of the body (within ``timeout_s``)."""
    d = target.deployment
    t0 = time.perf_counter()
    resp: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(timeout_s):
            resp = await session.post(target.urls[endpoint], data=body, headers=headers,
                                      timeout=target.timeout)
            if resp.status != 200:
                data = await resp.read()
                resp.release()
                failure = _failure(d, resp.status, resp.headers, data)
                if failure is not None:
                    raise failure
                return Reply(resp.status, resp.headers.get("Content-Type", "application/json"),
                             data, time.perf_counter() - t0)
            first = await resp.content.readany()
        if not first:
            raise AttemptError(d.name, FailureKind.PROTOCOL, "stream ended before any data")
        return StreamStart(resp, first, time.perf_counter() - t0)
    except BaseException as e:
        if resp is not None:
            resp.close()
        if isinstance(e, aiohttp.ClientError | TimeoutError):
            raise _translate(d, e, timeout_s) from e
        raise


def upstream_body(payload: dict[str, Any], raw: bytes, model: str, stream: bool,
                  d: Deployment) -> bytes:
    """The body sent to ``d``: the client's bytes, unless the model is renamed
    (``upstream_model``) or a stream must ask for usage (``stream_options.include_usage``)."""
    rename = d.sent_model != model
    if not stream and not rename:
        return raw
    p = dict(payload)
    if rename:
        p["model"] = d.sent_model
    if stream:
        options = p.get("stream_options")
        p["stream_options"] = ({**options, "include_usage": True} if isinstance(options, dict)
                               else {"include_usage": True})
    return orjson.dumps(p)


def usage_of(obj: Any) -> tuple[int, int]:
    """(input, output) tokens of an OpenAI response or chunk object; (0, 0) if absent."""
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    n_in, n_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (n_in if isinstance(n_in, int) else 0), (n_out if isinstance(n_out, int) else 0)


def _data(event: bytes) -> bytes:
    return b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n")
                      if line.startswith(b"data:"))


class SSERelay:
    """Passes a server-sent-event stream through, whole events at a time.

    ``feed`` returns the bytes to forward (complete events only; a partial event waits
    for the rest). Events carrying a ``usage`` object set :attr:`usage`; the final usage
    chunk (no choices) is dropped when ``strip_usage``. ``data: [DONE]`` sets
    :attr:`done`: a stream that ends without it did not complete.
    """

    __slots__ = ("_buf", "done", "strip_usage", "usage")

    def __init__(self, *, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.usage: tuple[int, int] = (0, 0)
        self.done = False
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return b""
        complete, self._buf = buf[: end + 2], buf[end + 2:]
        if _USAGE_OBJECT.search(complete) is None and _DONE.search(complete) is None:
            return complete
        kept = []
        for event in complete.split(b"\n\n")[:-1]:
            data = _data(event)
            if data.startswith(b"[DONE]"):
                self.done = True
            elif _USAGE_OBJECT.search(data) is not None:
                try:
                    obj = orjson.loads(data)
                except orjson.JSONDecodeError:
                    obj = None
                n_in, n_out = usage_of(obj)
                if n_in or n_out:
                    self.usage = (n_in, n_out)
                if self.strip_usage and isinstance(obj, dict) and not obj.get("choices"):
                    continue
            kept.append(event + b"\n\n")
        return b"".join(kept)
