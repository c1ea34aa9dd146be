"""The explorer's web application: the page and its JSON API on Starlette, served by uvicorn on 127.0.0.1 unless told
otherwise. What it guards: request bodies over 64 KiB or nested deeper than 8 levels are refused before parsing, and
numbers of more than 20 digits by name; a Host header that is not a loopback name or the bound address is refused
(DNS rebinding; bound to 0.0.0.0, the machine's names and addresses are its own); a POST must say its body is
JSON and, when an Origin is sent, come from this server's page (a page on another site cannot drive it); every
response carries a strict Content-Security-Policy. The figures come from the explorer's engine (engine.py)."""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fundform.base.errors import FundformError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

from fundform.interfaces.explorer.engine import Explorer, RequestProblem, clean_message

MAX_BODY = 64 * 1024  # a request is a few parameters; nothing larger is read
MAX_DEPTH = 8  # a request nests an object of numbers in an object: deeper JSON is refused before it is parsed
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of objects and arrays in a JSON text, counted without parsing it (brackets inside
    strings ignored): a body nested thousands deep is refused before the parser recurses into it."""
    depth = deepest = 0
    in_string = escaped = False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x7B, 0x5B):  # { [
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x7D, 0x5D):
            depth -= 1
    return deepest


WILDCARDS = ("0.0.0.0", "::", "")  # bound to every interface: the machine serves the network
MAX_DIGITS = 20  # no number the explorer reads has more digits than this (the largest is a few billion pence)


def host_name(host_header: str) -> str:
    """The name in a Host (or Origin authority) header, without its port: "[::1]:8765" -> "::1"."""
    h = host_header.strip().lower()
    return h[1:h.index("]")] if h.startswith("[") and "]" in h else h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def is_ip_literal(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def machine_names() -> set[str]:
    """This machine's own names, answered when it serves the network (--host 0.0.0.0)."""
    import socket

    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    return {n for n in names if n} | {n.split(".")[0] for n in names if n}


def host_allowed(host_header: str | None, bound: str) -> bool:
    """Whether a request's Host names this server: a loopback name or the address it is bound to (any port); bound
    to every interface (0.0.0.0, ::), also this machine's names and any address literal (a client on the network
    names the machine by its address; an address cannot be rebound, so DNS rebinding, which needs a name, is still
    refused). A page elsewhere whose DNS name is rebound to 127.0.0.1 sends its own name, and is refused."""
    if not host_header:
        return False
    name = host_name(host_header)
    if name in LOOPBACK or name == bound.strip("[]").lower():
        return True
    return bound.strip("[]") in WILDCARDS and (is_ip_literal(name) or name in machine_names())


def post_refusal(headers: dict[bytes, bytes], host_header: str) -> tuple[int, str] | None:
    """Why a POST is refused before any route runs, or None: its body must be declared JSON (a form another site
    posts cross-origin without asking is text/plain or form-encoded), and an Origin, when the browser sends one,
    must be this server's own (scheme http, the same host and port the request names). So a page on another site
    cannot make this explorer run design searches or whole downloads at its will."""
    ctype = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        shown = html.escape(ctype[:60]) or "none"
        return 415, f"a POST body must be JSON, sent with Content-Type: application/json (got {shown})"
    origin = headers.get(b"origin")
    if origin is not None:
        o = origin.decode("latin-1").strip().lower()
        if o != f"http://{host_header.strip().lower()}":
            return 403, (f"a POST from another origin ({html.escape(o[:100])}) is refused: the explorer answers its "
                         "own page only")
    return None

def create_app(explorer: Explorer, host: str = "127.0.0.1") -> ASGIApp:
    """The Starlette application: the page, its JSON API, nothing else. `host`: the address it is bound to, the one
    Host header besides loopback names it answers (DNS rebinding).

    Over 80 lines: the routes are closures over the one explorer and its limits, each a few lines, declared together."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from fundform.interfaces.explorer.page import page

    page_html = page(explorer)
    headers = {"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
               " img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

    async def body(request: Request) -> dict:
        too_big = RequestProblem(f"request body over {MAX_BODY // 1024} KiB", None, None, 413)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise too_big
        raw = bytearray()
        async for part in request.stream():  # read no more than the bound, chunked or not
            raw += part
            if len(raw) > MAX_BODY:
                raise too_big
        if json_depth(bytes(raw)) > MAX_DEPTH:
            raise RequestProblem(f"request body nests deeper than {MAX_DEPTH} levels")
        def whole(text: str) -> int:  # a number of hundreds of digits is refused by name, before int() meets it
            if len(text.lstrip("-")) > MAX_DIGITS:
                raise RequestProblem(f"a number of {len(text.lstrip('-')):,} digits in the request body: numbers "
                                     f"here have at most {MAX_DIGITS}")
            return int(text)

        def decimal(text: str) -> float:
            if len(text) > 100:
                raise RequestProblem(f"a number written with {len(text):,} characters in the request body: "
                                     "numbers here are written with at most 100")
            return float(text)
        try:  # NaN, Infinity and 1e400 parse, and are refused by name where a number is read (finite only)
            data = json.loads(bytes(raw) or b"{}", parse_int=whole, parse_float=decimal)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
            raise RequestProblem("request body is not JSON") from None
        if not isinstance(data, dict):
            raise RequestProblem("request body must be a JSON object")
        for key in ("formula", "level", "area"):
            if key in data and data[key] is not None and not isinstance(data[key], str):
                raise RequestProblem(f"'{key}' must be a string", key)
        return data

    def handle(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await fn(request), headers=headers)
            except RequestProblem as e:
                return JSONResponse(e.body, status_code=e.status, headers=headers)
            except FundformError as e:
                return JSONResponse({"error": clean_message(str(e), explorer.data_dir)}, status_code=422, headers=headers)
        return endpoint

    async def index(request: Request) -> Any:
        return HTMLResponse(page_html, headers=headers)

    async def setup(request: Request) -> Any:
        q = request.query_params
        return await run_in_threadpool(explorer.setup, q.get("formula", explorer.default_formula), q.get("level"))

    async def scenario(request: Request) -> Any:
        d = await body(request)  # the computation runs off the event loop: other requests are still answered
        return await run_in_threadpool(explorer.scenario, d.get("formula", explorer.default_formula), d.get("level"),
                                       d.get("values"))

    async def waterfall(request: Request) -> Any:
        d = await body(request)
        if not d.get("area"):
            raise RequestProblem("'area' is needed: an area code of the level", "area")
        return await run_in_threadpool(explorer.waterfall, d.get("formula", explorer.default_formula),
                                       d.get("level"), d.get("values"), d["area"])

    async def bands(request: Request) -> Any:
        d = await body(request)
        return await run_in_threadpool(explorer.bands, d.get("formula", explorer.default_formula), d.get("level"),
                                       d.get("values"))

    async def design(request: Request) -> Any:
        d = await body(request)
        return await run_in_threadpool(explorer.design, d.get("formula", explorer.default_formula), d.get("level"),
                                       d.get("design"))

    async def download(request: Request) -> Response:
        try:
            d = await body(request)
            data, media, name = await run_in_threadpool(explorer.download, d.get("formula", explorer.default_formula),
                                                        d.get("level"), d.get("values"), d.get("format"))
        except RequestProblem as e:
            return JSONResponse(e.body, status_code=e.status, headers=headers)
        return Response(data, media_type=media, headers={**headers, "Content-Disposition":
                                                         f'attachment; filename="{name}"'})

    async def save(request: Request) -> Any:
        d = await body(request)
        return await run_in_threadpool(explorer.scenario_file, d.get("formula", explorer.default_formula),
                                       d.get("level"), d.get("values"))

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such page: {html.escape(request.url.path)[:200]}"}, status_code=404,
                            headers=headers)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{request.method} is not accepted here"}, status_code=405, headers=headers)

    routes = [Route("/", index), Route("/api/setup", handle(setup)),
              Route("/api/scenario", handle(scenario), methods=["POST"]),
              Route("/api/waterfall", handle(waterfall), methods=["POST"]),
              Route("/api/save", handle(save), methods=["POST"]),
              Route("/api/design", handle(design), methods=["POST"]),
              Route("/api/bands", handle(bands), methods=["POST"]),
              Route("/api/download", download, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP request must name this server in its Host header, before any route runs."""
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_allowed(given, host):
                shown = html.escape(given[:100]) or "none"
                response = JSONResponse({"error": f"Host header '{shown}' does not name this server (expected "
                                                  f"localhost, 127.0.0.1, [::1] or {html.escape(host)})"},
                                        status_code=421, headers=headers)
                await response(scope, receive, send)
                return
            refused = post_refusal(dict(scope.get("headers") or []), given) if scope.get("method") == "POST" else None
            if refused is not None:
                await JSONResponse({"error": refused[1]}, status_code=refused[0], headers=headers)(scope, receive, send)
                return
        await app(scope, receive, send)
    return guarded


@contextmanager
def serving(explorer: Explorer, host: str = "127.0.0.1") -> Iterator[str]:
    """The explorer on a free port in a background thread, for the browser tests, the benchmark and the
    screenshots: yields its address and stops it on leaving."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(explorer, host), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise FundformError(f"the explorer did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}/"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8765, quiet: bool = False) -> None:
    import uvicorn

    uvicorn.run(create_app(explorer, host), host=host, port=port, log_level="warning" if quiet else "info",
                server_header=False, date_header=False)
