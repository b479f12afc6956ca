"""The server's limits, and the rule that only a loopback bind may go without a token.

An inference endpoint on a public address answers anyone and burns its CPU for them; so a
non-loopback ``--host`` refuses to start without a bearer token. Health probes stay open
(Kubernetes probes and load balancers call them without credentials).
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from dataclasses import dataclass

from alexnet_tvm.errors import ServeError

TOKEN_ENV = "ALEXNET_TVM_SERVE_TOKEN"
#: paths answered without a token
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
MIB = 1024 * 1024


@dataclass
class Limits:
    #: requests accepted and waiting to run, per model; one more is answered 503 at once
    max_queue: int = 64
    #: how long the first request of a batch waits for others (0: take what is queued, as Triton's default)
    max_delay_ms: float = 0.0
    #: seconds from a request's arrival to its answer; past it the answer is 504
    timeout_s: float = 30.0
    #: any request body (a 16-image JSON infer is ~30 MB)
    max_body_bytes: int = 64 * MIB
    #: a classify body
    max_image_bytes: int = 16 * MIB
    #: a classify image's width x height, checked before it is decoded
    max_image_pixels: int = 36_000_000
    top_k: int = 5

    def check(self) -> None:
        for name in ("max_queue", "max_body_bytes", "max_image_bytes", "max_image_pixels", "top_k"):
            if getattr(self, name) < 1:
                raise ServeError(f"{name.replace('_', '-')} must be at least 1")
        if not (math.isfinite(self.max_delay_ms) and math.isfinite(self.timeout_s)) or self.max_delay_ms < 0 \
                or self.timeout_s <= 0:
            raise ServeError("--max-delay-ms must be a finite number >= 0 and --timeout one > 0")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token, before anything is loaded."""
    if not is_loopback(host) and not token:
        raise ServeError(f"--host {host} is reachable from other machines: give a bearer token with --token "
                         f"or ${TOKEN_ENV} (clients send 'Authorization: Bearer TOKEN')")


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the token (constant-time comparison)."""
    if not token:
        return True
    return header is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
