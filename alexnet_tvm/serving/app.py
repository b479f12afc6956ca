"""The aiohttp application and the server's life: start, serve, drain on SIGTERM, exit.

Every answer that is not a success is one line of JSON, ``{"error": "..."}``, which is what
tritonclient reads into its exception; this includes aiohttp's own 404/405/413 answers.
On SIGTERM (or SIGINT) the server turns not-ready, stops listening, lets every request
already taken finish (the batchers stop waiting for fuller batches), then returns, so the
process exits 0 and a rolling update loses no request.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from aiohttp import web

from alexnet_tvm.errors import ServeError

from .batcher import Batcher
from .errors import ClientClosed, RequestError, Unauthorized
from .limits import OPEN_PATHS, Limits, authorized, check_bind
from .models import load_models
from .routes import STATE, ServerState, add_routes

if TYPE_CHECKING:
    from .pulled import PullRequest

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: called once the server listens, with its URL and model names (the CLI prints the ready line)
OnReady = Callable[[str, list[str]], None]


@dataclass
class ServeConfig:
    artifacts: list[Path]
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    #: serve every artifact under this model name (default: the manifests' model names)
    name: str | None = None
    limits: Limits = field(default_factory=Limits)
    #: packs to pull (digests checked) and serve besides ``artifacts``
    pull: PullRequest | None = None


def error_response(status: int, message: str) -> web.Response:
    """One line of JSON: what tritonclient and curl users both read."""
    text = " ".join(str(message).split())
    return web.json_response({"error": text}, status=status)


async def _answer(request: web.Request, handler: Handler, state: ServerState) -> web.StreamResponse:
    """The handler's answer, or the one-line error it earned."""
    if request.path not in OPEN_PATHS and not authorized(request.headers.get("Authorization"), state.token):
        return error_response(Unauthorized.status, "missing or wrong bearer token")
    try:
        async with asyncio.timeout(state.limits.timeout_s):
            return await handler(request)
    except RequestError as e:
        return error_response(e.status, str(e))
    except web.HTTPException as e:  # aiohttp's own: no route, wrong method, body over client_max_size
        if e.status < 400:
            raise
        return error_response(e.status, e.reason if e.status != 413 else e.text or e.reason)
    except TimeoutError:
        return error_response(504, f"no answer within {state.limits.timeout_s:g} s")


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors to JSON, and every answer counted and timed by route and code."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    try:
        resp = await _answer(request, handler, state)
    except Exception:  # noqa: BLE001 - a bug answers 500 and the server keeps serving
        log.exception("%s %s failed", request.method, request.path)
        resp = error_response(500, "internal error (see the server log)")
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    if resp.status == ClientClosed.status:  # nobody to answer: a disconnect, not an error of ours
        log.debug("%s %s: the client hung up mid-body", request.method, request.path)
        state.metrics.disconnects.labels(route).inc()
        return resp
    state.metrics.observe_request(route, resp.status, time.perf_counter() - t0)
    if resp.status == 401:
        resp.headers["WWW-Authenticate"] = "Bearer"
    elif resp.status == 503:
        resp.headers["Retry-After"] = "1"
    return resp


def build_app(state: ServerState) -> web.Application:
    app = web.Application(middlewares=[problems], client_max_size=state.limits.max_body_bytes)
    app[STATE] = state
    add_routes(app)
    return app


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _start(runner: web.AppRunner, host: str, port: int) -> str:
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    bound = runner.addresses[0]
    return f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}"


async def run_app(state: ServerState, host: str, port: int, on_ready: OnReady | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain: the whole life of a server on a running loop."""
    for name, model in state.models.items():
        state.batchers[name] = Batcher(model, state.limits.max_queue, state.limits.max_delay_ms, state.metrics)
        state.batchers[name].start()
    runner = web.AppRunner(build_app(state), shutdown_timeout=state.limits.timeout_s + 5, access_log=None,
                           handle_signals=False)
    try:
        url = await _start(runner, host, port)
        log.info("serving %s at %s", ", ".join(state.models), url)
        if on_ready is not None:
            on_ready(url, sorted(state.models))
        await _wait_for_signal()
        log.info("draining: no new connections, finishing the requests in flight")
        state.draining = True
        for b in state.batchers.values():
            b.drain()
        await runner.cleanup()
        log.info("drained; exiting")
    finally:
        for b in state.batchers.values():
            await b.close()


def serve(cfg: ServeConfig, on_ready: OnReady | None = None) -> None:
    """Check the bind, pull and load the artifacts, serve until SIGTERM and drain (blocks)."""
    check_bind(cfg.host, cfg.token)
    cfg.limits.check()
    with _pulled(cfg.pull) as extra:
        models = load_models([*cfg.artifacts, *extra], cfg.name)
        state = ServerState(models=models, limits=cfg.limits, token=cfg.token or None)
        asyncio.run(run_app(state, cfg.host, cfg.port, on_ready))


def _pulled(req: PullRequest | None):
    """The pulled packs' folders for as long as the server runs (none without --pull)."""
    if req is None:
        return nullcontext([])
    from .pulled import pulled_artifacts

    return pulled_artifacts(req)
