"""The HTTP handlers: health, metadata, infer, classify, metrics.

Handlers decode and encode big bodies on worker threads (``asyncio.to_thread``): a 16-image
JSON body is millions of numbers, and parsing it on the event loop would stall every other
client. A binary tensor is only wrapped, so it is decoded in place.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from aiohttp import web

from alexnet_tvm.batching import aligned_bytes

from .batcher import Batcher
from .classify import image_rows, top_k
from .errors import BadRequest, ClientClosed, NotFound, TooLarge
from .limits import Limits
from .metrics import ServeMetrics
from .models import ServedModel
from .protocol import HEADER_LENGTH, encode_infer, model_metadata, parse_infer, server_metadata


T = TypeVar("T")
#: below this much JSON, decoding or encoding on the event loop is cheaper than a thread hop
INLINE_BYTES = 64 * 1024


@dataclass
class ServerState:
    """What every handler needs; one per application."""

    models: dict[str, ServedModel]
    limits: Limits
    metrics: ServeMetrics = field(default_factory=ServeMetrics)
    token: str | None = None
    batchers: dict[str, Batcher] = field(default_factory=dict)
    draining: bool = False


STATE = web.AppKey("state", ServerState)


def _state(request: web.Request) -> ServerState:
    return request.app[STATE]


def _model(request: web.Request) -> ServedModel:
    """The model the path names (and its version, when the path has one); 404 otherwise."""
    state = _state(request)
    name = request.match_info["name"]
    model = state.models.get(name)
    if model is None:
        raise NotFound(f"unknown model {name!r}; serving {', '.join(sorted(state.models))}")
    version = request.match_info.get("version")
    if version is not None and version != model.version:
        raise NotFound(f"model {name!r} has no version {version!r}; it has {model.version!r}")
    return model


async def live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    """Not ready while draining, so a router stops sending before the port closes."""
    ok = not _state(request).draining
    return web.json_response({"ready": ok}, status=200 if ok else 503)


async def server_meta(request: web.Request) -> web.Response:
    return web.json_response(server_metadata())


async def model_meta(request: web.Request) -> web.Response:
    return web.json_response(model_metadata(_model(request)))


async def model_ready(request: web.Request) -> web.Response:
    model = _model(request)
    ok = not _state(request).draining
    return web.json_response({"name": model.name, "ready": ok}, status=200 if ok else 503)


async def read_body(request: web.Request, limit: int, aligned_at: int = 0) -> memoryview:
    """The body, refusing one that says (or turns out) to be larger than ``limit`` with 413.

    With a Content-Length (what every client here sends), the chunks are copied once, as they
    come, into a buffer whose byte ``aligned_at`` is 64-byte aligned; a binary tensor starting
    there is then lent to the library without another copy. (``request.read()`` joins the chunks
    into a bytearray and copies that into bytes: on a Zen 4 under 32 clients, copying was 30 % of
    the event loop's CPU time, and every core-millisecond the loop spends is taken from the
    library on 2 vCPUs.)"""
    size = request.content_length
    if size is not None and size > limit:
        raise TooLarge(f"body of {size} bytes is over the limit of {limit}")
    try:
        if size is None:  # chunked: no size to allocate for
            body = memoryview(await request.read())
        else:
            body = memoryview(aligned_bytes(size, aligned_at if 0 <= aligned_at < size else 0))
            request.content.set_read_chunk_size(size)  # as request.read() does: no pausing mid-body
            got = 0
            while chunk := await request.content.readany():  # aiohttp stops at Content-Length
                body[got:got + len(chunk)] = chunk
                got += len(chunk)
            if got < size:
                raise ConnectionResetError
    except ConnectionResetError:  # aiohttp's "Connection lost": the client hung up mid-body
        raise ClientClosed(f"the client closed the connection before sending its {request.content_length} "
                           "bytes") from None
    if len(body) > limit:
        raise TooLarge(f"body of {len(body)} bytes is over the limit of {limit}")
    return body


async def off_loop(work_bytes: int, fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` on a worker thread when it has real work (JSON numbers to parse or print);
    inline when small, where the thread hop would cost more than the work (a binary image)."""
    if work_bytes <= INLINE_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


async def infer(request: web.Request) -> web.Response:
    state = _state(request)
    model = _model(request)
    header = request.headers.get(HEADER_LENGTH)
    head_bytes = int(header) if header is not None and header.isdigit() else None
    body = await read_body(request, state.limits.max_body_bytes, aligned_at=head_bytes or 0)
    req = await off_loop(len(body) if head_bytes is None else head_bytes, parse_infer, body, header, model)
    logits = await state.batchers[model.name].infer(req.x)
    payload, headers = await off_loop(0 if req.binary_output else 16 * logits.size, encode_infer, req, model, logits)
    return web.Response(body=payload, headers=headers)


async def classify(request: web.Request) -> web.Response:
    """An image body (``?top_k=N``) -> the top classes with probabilities."""
    state = _state(request)
    model = _model(request)
    try:
        k = int(request.query.get("top_k", state.limits.top_k))
    except ValueError:
        raise BadRequest(f"top_k must be an integer, got {request.query.get('top_k')!r}") from None
    if k < 1:
        raise BadRequest("top_k must be at least 1")
    body = await read_body(request, state.limits.max_image_bytes)
    x = await asyncio.to_thread(image_rows, body, model.meta, state.limits.max_image_pixels)
    logits = await state.batchers[model.name].infer(x)
    return web.json_response({"model_name": model.name, "model_version": model.version,
                              "top": top_k(logits[0], model.meta, k)})


async def metrics(request: web.Request) -> web.Response:
    text, content_type = _state(request).metrics.render()
    resp = web.Response(body=text)
    resp.headers["Content-Type"] = content_type
    return resp


def add_routes(app: web.Application) -> None:
    """The OIP REST paths (with and without ``/versions/{version}``) and the two conveniences."""
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2", server_meta)
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(base, model_meta)
        app.router.add_get(f"{base}/ready", model_ready)
        app.router.add_post(f"{base}/infer", infer)
        app.router.add_post(f"{base}/classify", classify)
    app.router.add_get("/metrics", metrics)
