"""What the gateway answers when it cannot serve a request, and why an attempt failed.

    GatewayError     the request is answered with an error: an HTTP status and an
                     OpenAI-format body ``{"error": {"message", "type", "param", "code"}}``
    AttemptError     one upstream attempt failed in a way that another deployment may fix
                     (connection, timeout to first byte, 5xx, 429, malformed response);
                     ``FailureKind`` says which, so callers decide by type, never by text

A 4xx other than 429 from an upstream is not an ``AttemptError``: it is the client's
fault and is returned as it came.
"""

from __future__ import annotations

from enum import StrEnum

import orjson


class GatewayError(Exception):
    """A request answered with an error in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return orjson.dumps({"error": self.payload()})

    def payload(self) -> dict[str, str | None]:
        """The inner ``error`` object (also sent as an SSE event when a stream fails)."""
        return {"message": self.message, "type": self.type, "param": self.param,
                "code": self.code}

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Extra response headers: ``retry-after`` (whole seconds, rounded up) when known."""
        if self.retry_after_s is None:
            return []
        return [(b"retry-after", str(max(1, -int(-self.retry_after_s // 1))).encode())]


def bad_request(message: str, param: str | None = None) -> GatewayError:
    """400: the body is not what the endpoint expects."""
    return GatewayError(400, message, param=param, code="invalid_request")


class FailureKind(StrEnum):
    """Why an upstream attempt failed; every kind counts against the deployment's breaker."""

    CONNECT = "connect"  # could not connect, or the connection was reset or closed
    TIMEOUT = "timeout"  # no first byte within the deployment's timeout (or the deadline)
    SERVER_ERROR = "server_error"  # HTTP 5xx
    RATE_LIMITED = "rate_limited"  # HTTP 429, maybe with Retry-After
    PROTOCOL = "protocol"  # a malformed or truncated response
    INTERRUPTED = "interrupted"  # a stream failed after bytes were sent to the client


class AttemptError(Exception):
    """One failed attempt on one deployment."""

    def __init__(
        self,
        deployment: str,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{deployment}: {detail}")
        self.deployment = deployment
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after_s = retry_after_s


def all_failed(failures: list[AttemptError], *, unavailable: int) -> GatewayError:
    """The error for a request whose every attempt failed (or that could make none).

    504 when every attempt timed out; 503 when no deployment could be tried (circuits
    open, drained or at capacity) or every one answered 429 (with the shortest
    Retry-After); 502 otherwise. The message names each attempt's deployment and error.
    """
    if not failures:
        return GatewayError(
            503, f"no deployment available: {unavailable} allowed deployment(s) are unhealthy, "
                 "drained or at capacity", type="upstream_error", code="no_deployment_available")
    detail = "; ".join(str(f) for f in failures)
    message = f"all {len(failures)} attempt(s) failed: {detail}"
    kinds = {f.kind for f in failures}
    if kinds == {FailureKind.TIMEOUT}:
        return GatewayError(504, message, type="upstream_error", code="upstream_timeout")
    if kinds == {FailureKind.RATE_LIMITED}:
        waits = [f.retry_after_s for f in failures if f.retry_after_s is not None]
        return GatewayError(503, message, type="upstream_error", code="upstream_rate_limited",
                            retry_after_s=min(waits) if waits else None)
    return GatewayError(502, message, type="upstream_error", code="upstream_failed")
