"""What one request can earn instead of an answer. Unlike :class:`~alexnet_tvm.errors.ServeError`
these never stop the server: the middleware turns each into a one-line JSON error with its status."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses; ``status`` is its HTTP code (a subclass declares its own)."""

    status = 400

    def __init_subclass__(cls, status: int = 400, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status


class BadRequest(RequestError, status=400):
    """Malformed JSON, a tensor of the wrong name, shape or dtype, an unreadable image."""


class Unauthorized(RequestError, status=401):
    """No bearer token, or the wrong one."""


class NotFound(RequestError, status=404):
    """A model or version this server does not serve."""


class TooLarge(RequestError, status=413):
    """A body or an image over the configured limits."""


class ClientClosed(RequestError, status=499):
    """The client hung up before its request was read (nginx's 499): nobody to answer, and no
    fault of the server's; counted as a disconnect, not as an error."""


class Overloaded(RequestError, status=503):
    """The queue is full: refused at once, so a router can retry elsewhere."""
