"""Titles over HTTP: the FastAPI app of serve.py and its micro-batcher.

    app = create_app(TitleGenerator.from_pretrained(path), ServerSettings(), checkpoint=path)

    POST /v1/titles {"abstracts": ["..."], "num_return": 3, ...}  -> {"titles": [[{"title", "score"}, ...]], "decode"}
    GET /healthz  (model, decoding defaults, limits, queue, time per phase)   GET /  (the page)   GET /openapi.json

A request's decoding options are generate.py's decode.* options (no prefix); those left out are the
checkpoint's. They are checked by TitleGenerator.options, the code generate.py's decoding goes through, so
an HTTP 422 carries generate.py's one-line message, and a request's titles are generate.py's.

Why micro-batching: one decode of 16 abstracts costs much less than 16 decodes of one (the matrix products
fill up). Requests wait in a bounded queue; the worker takes the oldest, lets others with the same decoding
options join it for up to server.max_wait_ms or until server.max_batch abstracts, decodes them in one call
(TitleGenerator.hypotheses, batches of max_batch) and answers each. Decoding runs in one worker thread, so
the event loop stays free to read, refuse (503) and answer while torch works.

Memory is bounded whatever the requests: at most queue_size requests wait, each at most max_body_bytes and
max_total_chars; a decode holds at most max_batch abstracts x their hypotheses (check_decode: at most 64) at
once; RequestGuard answers 503 beyond max_requests requests at once; guarded_protocol closes connections that
idle or trickle, and idle ones beyond max_connections.

One request cannot hurt another: abstracts are checked before they join a batch; a batch that fails anyway is
decoded again request by request; a request past its time budget (decode_timeout_s from arrival: 504) or whose
client went away leaves the queue, and a decode that nobody waits for any more stops at its next step
(stop_between_steps: search steps and re-ranked candidates); the next batch starts only once it has stopped.
"""
# no `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at run time

import asyncio
import ipaddress
import json
import logging
import socket
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

from .config_checks import DEVICE, Checker
from .errors import ConfigError, one_line, show
from .generation import DEFAULT_DECODE, GenerationError, checked_abstracts, json_score
from .rerank import FEATURES, NO_RERANK, WEIGHT_SETS, bounded
from .option_schema import CHECK, boolean, choice, integer, number, text

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("serve_page.html")
# the re-ranker's mbr feature compares each candidate with at most this many (the most likely): its cost grows
# with candidates x this, not candidates squared (beam 64: 1024 comparisons per abstract, not 4032). The
# preset's beam 16 is within it, so its titles are generate.py's; beyond it the server's order may differ.
SERVER_MBR_EVIDENCE = 16
SERVE_KEYS = ("checkpoint", "device", "max_source_len", "keep_case", "server")  # conf/serve.yaml's top level
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")  # uvicorn's


def _check_hosts(key: str, value):
    if value is None or (isinstance(value, Sequence) and not isinstance(value, str) and value
                         and all(isinstance(h, str) and h.strip() and "/" not in h for h in value)):
        return value
    raise ConfigError(f"{key}={show(value)}: allowed values are null (the bound host's names) or a list of host "
                      "names, e.g. [titles.example.org] ('*': any host)")


@dataclass(frozen=True)
class ServerSettings:
    """conf/serve.yaml's server.* (its defaults; tests assert that they agree), each field with its allowed
    values (option_schema; check_serve checks them)."""

    host: str = text("127.0.0.1", what="a host name or address")
    port: int = integer(8000, 0, 65535, note=" (0: any free port)")
    max_batch: int = integer(16, 1)
    max_wait_ms: float = number(10, 0.0)
    queue_size: int = integer(64, 1)
    max_abstracts: int = integer(16, 1)
    max_chars: int = integer(4000, 1)
    max_total_chars: int = integer(32000, 1)
    max_body_bytes: int = integer(262144, 1)
    decode_timeout_s: float = number(60, 0.0, low_open=True)
    retry_after_s: int = integer(1, 1)
    header_timeout_s: float = number(10, 0.0, low_open=True)
    body_timeout_s: float = number(30, 0.0, low_open=True)
    keep_alive_s: int = integer(5, 1)
    max_connections: int = integer(256, 1)
    allowed_hosts: list | None = field(default=None, metadata={CHECK: _check_hosts})
    docs: bool = boolean(False)
    threads: int | None = integer(None, 1)
    log_level: str = choice("info", LOG_LEVELS)

    def limits(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("host", "port", "log_level", "allowed_hosts", "docs")}

    @property
    def max_requests(self) -> int:
        """Requests handled at once (reading a body, waiting, decoding) beyond which one is answered 503: those
        the queue and a batch can hold, twice over (memory stays bounded whatever the clients do)."""
        return 2 * (self.queue_size + self.max_batch)

    def hosts_answered(self) -> frozenset[str] | None:
        """The Host header names the server answers (ports aside); None: any. server.allowed_hosts, else the
        bound host's (loopback: its loopback names): a web page's script that reaches a loopback server through
        a DNS name of its own (DNS rebinding) is refused."""
        if self.allowed_hosts is not None:
            return None if "*" in self.allowed_hosts else frozenset(h.lower() for h in self.allowed_hosts)
        if self.host in WILDCARD_HOSTS:
            return None
        if is_loopback(self.host):
            return frozenset({self.host.lower(), *LOOPBACK_NAMES})
        return frozenset({self.host.lower()})


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_warning(settings: ServerSettings) -> str | None:
    """What serve.py says when it listens beyond this machine."""
    if is_loopback(settings.host):
        return None
    where = "every network interface" if settings.host in WILDCARD_HOSTS else settings.host
    hosts = settings.hosts_answered()
    return (f"warning: server.host={settings.host} serves {where}: anyone who can reach this machine can use the "
            "server, which has no authentication (put a proxy in front, or keep 127.0.0.1); Host headers answered: "
            + ("any (set server.allowed_hosts to the names clients use)" if hosts is None else ", ".join(sorted(hosts))))


class RequestError(Exception):
    """A request answered with an error: HTTP status and a one-line message (the JSON body's "detail")."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class QueueFull(Exception):
    """server.queue_size requests are already waiting."""


class DecodeCancelled(Exception):
    """Raised inside a decode whose time ran out (stop_between_steps)."""


# --------------------------------------------------------------------------------------- requests


def parse_titles_request(body: bytes, generator, settings: ServerSettings) -> tuple[list[str], dict]:
    """(abstracts, decoding options) of a POST /v1/titles body, or RequestError: 400 not UTF-8 JSON,
    413 over a limit, 422 bad abstracts or options (generate.py's messages)."""
    payload = _json_object(body)
    abstracts = payload.pop("abstracts", None)
    _check_abstracts(abstracts, settings)
    try:
        return abstracts, generator.options(**payload)
    except GenerationError as e:
        raise RequestError(422, str(e)) from None


def _json_object(body: bytes) -> dict:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {e.start})") from None
    try:
        payload = json.loads(text)
    except ValueError as e:
        raise RequestError(400, f"the body is not JSON: {e}") from None
    except RecursionError:  # arrays nested deeper than Python's recursion limit
        raise RequestError(400, "the body is not JSON this server reads: nested too deeply") from None
    if not isinstance(payload, dict):
        raise RequestError(422, 'the body must be a JSON object: {"abstracts": ["..."], ...decoding options}')
    return payload


def _check_abstracts(abstracts, settings: ServerSettings) -> None:
    if abstracts is None:
        raise RequestError(422, '"abstracts" is missing: give a list of abstracts (strings)')
    if not isinstance(abstracts, list):
        raise RequestError(422, f'"abstracts" must be a list of strings, not {type(abstracts).__name__}')
    if not abstracts:
        raise RequestError(422, '"abstracts" is empty: give at least one abstract')
    if len(abstracts) > settings.max_abstracts:
        raise RequestError(413, f"{len(abstracts)} abstracts in one request; at most {settings.max_abstracts} "
                                "(server.max_abstracts): send them in several requests")
    try:
        checked_abstracts(abstracts)
    except GenerationError as e:
        raise RequestError(422, str(e)) from None
    for i, text in enumerate(abstracts):
        if len(text) > settings.max_chars:
            raise RequestError(413, f"abstract {i + 1} has {len(text)} characters; at most {settings.max_chars} "
                                    "(server.max_chars)")
    total = sum(map(len, abstracts))
    if total > settings.max_total_chars:
        raise RequestError(413, f"the abstracts have {total} characters in all; at most {settings.max_total_chars} "
                                "per request (server.max_total_chars)")


async def read_body(request, limit: int, timeout_s: float = 30.0) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (declared or streamed), and with 408 when
    it has not all come within `timeout_s` (a Content-Length larger than what is sent, a client that stalls):
    the connection is closed then, not held open."""
    declared = request.headers.get("content-length", "")
    too_large = RequestError(413, f"the body exceeds {limit} bytes (server.max_body_bytes)")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)

    from starlette.requests import ClientDisconnect

    try:
        await asyncio.wait_for(read(), timeout_s)
    except ClientDisconnect:
        raise RequestError(499, "the client went away while sending the body") from None  # nobody reads it
    except asyncio.TimeoutError:
        raise RequestError(408, f"the body did not arrive within {timeout_s:g} s (server.body_timeout_s): "
                                f"{size} bytes came" + (f" of the {declared} declared" if declared else ""),
                           headers={"Connection": "close"}) from None
    return b"".join(chunks)


def require_json(request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise RequestError(415, f"Content-Type must be application/json, not {media_type or 'missing'}")


# --------------------------------------------------------------------------------------- batching


@dataclass(eq=False)
class _Pending:
    abstracts: list[str]
    options: dict
    future: asyncio.Future
    expiry: asyncio.TimerHandle | None = None  # answers 504 at the request's deadline

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.options.items()))


class MicroBatcher:
    """Gathers waiting requests with the same decoding options into one decode (module docstring).

    decode(abstracts, options, cancelled: threading.Event) -> one result per abstract, run in one worker
    thread; it should stop soon after `cancelled` is set (raising DecodeCancelled).

    Each request has one time budget, decode_timeout_s from its arrival: at its deadline it is answered 504,
    waiting or being decoded. A request that is answered (504) or whose client went away (its future
    cancelled) is dropped from the queue; a decode whose every request is so is stopped at its next step
    (`cancelled`), so nobody's time goes into titles nobody will read."""

    def __init__(self, decode: Callable, settings: ServerSettings):
        self._decode, self._settings = decode, settings
        self._waiting: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.decoding = False  # a decode is running (healthz, tests)
        self.batches = 0  # decodes run so far
        self.stopped = 0  # decodes stopped early: every request of theirs answered (timed out) or gone
        self.dropped = 0  # requests taken off the queue undecoded: timed out or gone while waiting
        self.retried = 0  # batches decoded again request by request after an unexpected error
        self.busy_s = 0.0  # the decode worker's time in decodes (bench_serve.py: how busy it is)

    def start(self) -> asyncio.Task:
        """The worker task, in the running event loop (each start of the app has its own loop)."""
        self._waiting.clear()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        return asyncio.create_task(self.run())

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def submit(self, abstracts: list[str], options: dict) -> list:
        """The results of `abstracts`, once decoded; QueueFull at once when queue_size requests wait. A task
        awaiting it that is cancelled (the client went away) cancels the request: the worker skips it."""
        if len(self._waiting) >= self._settings.queue_size:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        pending = _Pending(abstracts, options, loop.create_future())
        pending.expiry = loop.call_later(self._settings.decode_timeout_s, _time_out, pending,
                                         self._settings.decode_timeout_s)
        self._waiting.append(pending)
        self._arrived.set()
        try:
            return await pending.future
        finally:
            pending.expiry.cancel()
            if pending in self._waiting:  # timed out or gone while waiting: its place is free at once
                self._waiting.remove(pending)
                self.dropped += 1

    async def run(self) -> None:
        """The worker: the oldest request, those that join it, one decode, the answers; forever."""
        try:
            while True:
                first = await self._next()
                await self._decode_and_answer(await self._gather(first))
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _next(self) -> _Pending:
        while True:
            while self._waiting:
                pending = self._waiting.popleft()
                if not pending.future.done():
                    return pending
                self.dropped += 1
            self._arrived.clear()
            await self._arrived.wait()

    async def _gather(self, first: _Pending) -> list[_Pending]:
        """`first` and the waiting requests with its options that fit in max_batch abstracts, waiting up to
        max_wait_ms for more to arrive."""
        loop = asyncio.get_running_loop()
        batch, size = [first], len(first.abstracts)
        deadline = loop.time() + self._settings.max_wait_ms / 1000
        while size < self._settings.max_batch:
            joining = self._take_same(first.key, self._settings.max_batch - size)
            if joining is not None:
                batch.append(joining)
                size += len(joining.abstracts)
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        return batch

    def _take_same(self, key: tuple, room: int) -> _Pending | None:
        for i, pending in enumerate(self._waiting):
            if not pending.future.done() and pending.key == key and len(pending.abstracts) <= room:
                del self._waiting[i]
                return pending
        return None

    async def _decode_and_answer(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        self.dropped += len(batch) - len(live)
        if not live:
            return
        results, error = await self._run_decode(live)
        if error is not None and len(live) > 1 and not isinstance(error, (DecodeCancelled, RequestError)):
            # an unexpected failure may be one request's doing (an input no check foresaw): decode each alone,
            # so that only the offending request gets the error
            log.warning("a batch of %d requests failed (%s); decoding them one by one", len(live), one_line(error))
            self.retried += 1
            for pending in live:
                if not pending.future.done():
                    _answer([pending], *await self._run_decode([pending]))
            return
        _answer(live, results, error)

    async def _run_decode(self, live: list[_Pending]) -> tuple[list | None, Exception | None]:
        """One decode of `live`'s abstracts in the worker thread: (results, None) or (None, the error). It is
        stopped at its next step once every request of `live` is answered or gone."""
        abstracts = [a for p in live for a in p.abstracts]
        cancelled = threading.Event()

        def stop_when_nobody_waits(_future) -> None:
            if all(p.future.done() for p in live):
                cancelled.set()

        for pending in live:
            pending.future.add_done_callback(stop_when_nobody_waits)
        loop = asyncio.get_running_loop()
        started = loop.time()
        work = loop.run_in_executor(self._executor, self._decode, abstracts, live[0].options, cancelled)
        self.decoding = True
        try:
            return await work, None
        except asyncio.CancelledError:
            cancelled.set()  # the server is stopping
            raise
        except DecodeCancelled as e:
            self.stopped += 1
            return None, e
        except Exception as e:  # answered to the batch's requests, the server goes on
            return None, e
        finally:
            self.decoding = False
            self.batches += 1
            self.busy_s += loop.time() - started
            for pending in live:
                pending.future.remove_done_callback(stop_when_nobody_waits)


def _time_out(pending: _Pending, timeout_s: float) -> None:
    if not pending.future.done():
        pending.future.set_exception(RequestError(
            504, f"the request took longer than {timeout_s:g} s (server.decode_timeout_s: its time budget, from "
                 "arrival to answer, waiting, search and re-ranking included) and was stopped: send fewer abstracts "
                 "or ask for fewer beams or titles"))


def _answer(batch: list[_Pending], results: list | None, error: Exception | None) -> None:
    start = 0
    for pending in batch:
        n = len(pending.abstracts)
        if not pending.future.done():
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(results[start:start + n])
        start += n



@contextmanager
def stop_between_steps(model, cancelled: threading.Event):
    """While in the block, model.step raises DecodeCancelled once `cancelled` is set, and so does the
    re-ranker between candidates (rerank.bounded). decoding.py's searches call model.step once per title
    token, so a decode stops within one step (or one candidate's features) of its time limit, whatever its
    batch, without the searches knowing. The wrapper lives on the instance, for the block only."""
    real_step = model.step

    def stop_if_cancelled() -> None:
        if cancelled.is_set():
            raise DecodeCancelled()

    def step(*args, **kwargs):
        stop_if_cancelled()
        return real_step(*args, **kwargs)

    model.step = step
    try:
        with bounded(stop_if_cancelled, mbr_evidence=SERVER_MBR_EVIDENCE):
            yield
    finally:
        del model.step


def decode_with(generator, batch_size: int, phases: dict | None = None) -> Callable:
    """MicroBatcher's decode for a TitleGenerator: hypotheses() in batches of batch_size, stoppable; the time
    of each phase (decoding.timing_phases) added to `phases`."""

    def decode(abstracts: list[str], options: dict, cancelled: threading.Event) -> list:
        from .decoding import timing_phases  # torch: loaded with the model already

        with stop_between_steps(generator.model, cancelled), timing_phases(phases if phases is not None else {}):
            return generator.hypotheses(abstracts, batch_size=batch_size, **options)

    return decode


# --------------------------------------------------------------------------------------- the app


def create_app(generator, settings: ServerSettings | None = None, checkpoint: str = "", decode: Callable | None = None):
    """The FastAPI app serving `generator` (a TitleGenerator). `decode` replaces decode_with(generator) (tests)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    settings = settings or ServerSettings()
    # seconds per decoding phase over the server's life (healthz), added to by the decode thread: healthz reads a
    # copy (dict() copies in one step; iterating it while a new phase is added would fail)
    phases: dict[str, float] = {}
    batcher = MicroBatcher(decode or decode_with(generator, settings.max_batch, phases), settings)

    @asynccontextmanager
    async def lifespan(app):
        worker = batcher.start()
        yield
        worker.cancel()
        with suppress(asyncio.CancelledError):
            await worker

    # FastAPI's /docs page loads its scripts from a CDN: blank offline, and a third party sees who reads it.
    # Off unless server.docs; /openapi.json (what it shows) is always served.
    app = FastAPI(title="seq2seq-rdrop titles", lifespan=lifespan,
                  docs_url="/docs" if settings.docs else None, redoc_url="/redoc" if settings.docs else None,
                  description="Paper titles for Chinese abstracts (CSL). POST /v1/titles; the page is at /.")
    app.state.batcher = batcher
    app.add_middleware(RequestGuard, settings=settings)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, e: RequestError):
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=e.headers)

    @app.post("/v1/titles", openapi_extra=_request_schema())
    async def titles(request: Request) -> dict:
        """Titles with their scores (length-normalised log-probability, higher is better), best first, per abstract."""
        require_json(request)
        abstracts, options = parse_titles_request(await read_body(request, settings.max_body_bytes,
                                                                  settings.body_timeout_s),
                                                  generator, settings)
        rows = await _submit(batcher, abstracts, options, settings, request)
        return {"titles": [[{"title": t, "score": json_score(s)} for t, s in row] for row in rows], "decode": options}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "checkpoint": checkpoint, "family": getattr(generator.model, "family", None),
                "decode": generator.decode, "max_source_len": generator.max_source_len,
                "limits": settings.limits(),
                "queue": {"waiting": batcher.waiting, "decoding": batcher.decoding, "batches": batcher.batches,
                          "stopped": batcher.stopped, "dropped": batcher.dropped, "retried": batcher.retried},
                "seconds": {"decoding": round(batcher.busy_s, 3), **{k: round(v, 3) for k, v in dict(phases).items()}}}

    page = PAGE.read_text(encoding="utf-8")

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    return app


class RequestGuard:
    """ASGI middleware before the routes: a Host header the server does not answer to is refused (400), and
    beyond settings.max_requests requests at once a request is answered 503 with Retry-After, in the JSON body
    every error has. GET /healthz is always answered (it costs nothing): a monitor sees a busy server as busy,
    not as dead."""

    def __init__(self, app, settings: ServerSettings):
        self.app, self.settings = app, settings
        self.hosts = settings.hosts_answered()
        self.active = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if self.hosts is not None and host not in self.hosts:
            return await _send_json(send, 400, f"Host header {host or 'missing'!r} is not a name this server "
                                               f"answers to ({', '.join(sorted(self.hosts))}; server.allowed_hosts)")
        if scope["path"] == "/healthz":
            return await self.app(scope, receive, send)
        if self.active >= self.settings.max_requests:
            return await _send_json(send, 503, f"the server is busy: {self.active} requests are being handled "
                                               f"(2 x (server.queue_size + server.max_batch)); retry later",
                                    {"retry-after": str(self.settings.retry_after_s)})
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def _host_name(header: str) -> str:
    """The host of a Host header, lower case, without its port: example.org:8000 -> example.org,
    [::1]:8000 -> ::1."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def _send_json(send, status: int, detail: str, headers: dict | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   *((k.encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _submit(batcher: MicroBatcher, abstracts: list[str], options: dict, settings: ServerSettings,
                  request) -> list:
    """The request's results, or RequestError. Under uvicorn a client that goes away does not cancel its
    handler (it only sees http.disconnect when it reads): its request is cancelled here, so that the batcher
    drops it from the queue or stops the decode nobody else waits for."""
    answer = asyncio.ensure_future(batcher.submit(abstracts, options))
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not answer.done():
            answer.cancel()  # cancels the request's future: the batcher skips or stops it
        gone.cancel()
    if answer.cancelled():
        raise RequestError(499, "the client went away before its titles were ready")  # nobody reads it
    try:
        return answer.result()
    except QueueFull:
        raise RequestError(503, f"the server is busy: {settings.queue_size} requests are waiting "
                                "(server.queue_size); retry later",
                           headers={"Retry-After": str(settings.retry_after_s)}) from None
    except GenerationError as e:  # e.g. the batch would not fit in memory
        raise RequestError(422, str(e)) from None
    except (RequestError, DecodeCancelled):
        raise
    except Exception as e:  # an unforeseen failure of this request's decode: one line, the log has the rest
        log.error("decoding failed", exc_info=e)
        raise RequestError(500, f"decoding failed: {one_line(e)}") from None


async def _client_gone(request) -> None:
    """Returns once the client has disconnected (the body is read already: what comes next is that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _request_schema() -> dict:
    """POST /v1/titles's body for the OpenAPI page (the body is read by parse_titles_request, not by FastAPI)."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    options = {k: {"type": kinds[type(v)], "description": "generate.py's decode." + k + "; left out: the checkpoint's"}
               for k, v in DEFAULT_DECODE.items()}
    options["rerank"] = {"anyOf": [{"type": "string", "enum": [NO_RERANK, *WEIGHT_SETS]},
                                   {"type": "object", "additionalProperties": {"type": "number"}}],
                         "description": f"{NO_RERANK}, a named weight set ({', '.join(WEIGHT_SETS)}), or weights of "
                                        f"the re-ranking features: {', '.join(FEATURES)}"}
    schema = {"type": "object", "required": ["abstracts"], "additionalProperties": False,
              "properties": {"abstracts": {"type": "array", "items": {"type": "string"}, "minItems": 1}, **options}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# --------------------------------------------------------------------------------------- serve.py


def check_serve(cfg) -> None:
    """The options of serve.py (conf/serve.yaml), before the model is loaded. Raises ConfigError (one line)."""
    check = Checker(cfg)
    server = {f.name: f for f in fields(ServerSettings)}
    unknown = sorted(set(cfg.keys()) - set(SERVE_KEYS)) + sorted(f"server.{k}" for k in set(cfg.server) - set(server))
    if unknown:  # keys added with +key=value
        raise ConfigError(f"unknown option {unknown[0]!r} (python serve.py --help lists the options)")
    check.text("checkpoint", what="a checkpoint directory")
    if not DEVICE.match(str(check.get("device"))):
        raise ConfigError(f"device={show(check.get('device'))}: allowed values are auto, cpu, cuda, cuda:N")
    check.integer("max_source_len", 1, null=True)
    check.boolean("keep_case")
    for name, declaration in server.items():
        check.declared(f"server.{name}", declaration)


def run_server(cfg) -> None:
    """serve.py: check the options, load the checkpoint, listen, serve until interrupted."""
    from omegaconf import OmegaConf

    from .generation import TitleGenerator

    check_serve(cfg)
    settings = ServerSettings(**OmegaConf.to_container(cfg.server, resolve=True))
    generator = TitleGenerator.from_pretrained(cfg.checkpoint, device=cfg.device, max_source_len=cfg.max_source_len,
                                               keep_case=cfg.keep_case)
    if settings.threads is not None:  # the decode worker's torch threads (torch is loaded with the model)
        import torch

        torch.set_num_threads(settings.threads)
    app = create_app(generator, settings, checkpoint=str(cfg.checkpoint))
    warning = host_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    listening = _listen(settings.host, settings.port)
    host, port = listening.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {cfg.checkpoint} on http://{shown}:{port}/ (POST /v1/titles, /docs; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    _serve(app, settings, listening)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket (bound before uvicorn starts, so that port 0 can be reported)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        raise GenerationError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def _serve(app, settings: ServerSettings, listening: socket.socket) -> None:
    import uvicorn

    uvicorn.Server(server_config(app, settings)).run(sockets=[listening])


def server_config(app, settings: ServerSettings):
    """uvicorn's Config for `app`: h11 with the connection guards of guarded_protocol. uvicorn's own
    limit_concurrency is not used: it counts idle connections too, and answers in plain text."""
    import uvicorn

    return uvicorn.Config(app, log_level=settings.log_level, timeout_graceful_shutdown=5,
                          timeout_keep_alive=settings.keep_alive_s, http=guarded_protocol(settings))


def guarded_protocol(settings: ServerSettings):
    """uvicorn's h11 protocol, with what it lacks against idle and slow clients: a connection must complete a
    request's headers within header_timeout_s of opening (or of its previous answer), else it is closed
    (uvicorn's keep-alive timer stops at the first byte, so a client that sends half its headers would hold the
    connection for ever); and beyond max_connections open connections the oldest one still waiting for headers
    is closed, so that idle sockets can never keep a client out. Slow bodies: read_body's body_timeout_s."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    awaiting_headers: dict = {}  # connection -> its timer, oldest first (dicts keep their order)

    class GuardedH11Protocol(H11Protocol):
        _answered_cycle = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > settings.max_connections and awaiting_headers:
                oldest = next(iter(awaiting_headers))
                oldest._close_waiting()
            self._await_headers()

        def _await_headers(self) -> None:
            self._stop_waiting()
            self._answered_cycle = self.cycle  # a request other than this one ends the wait
            awaiting_headers[self] = self.loop.call_later(settings.header_timeout_s, self._close_waiting)

        def _stop_waiting(self) -> None:
            timer = awaiting_headers.pop(self, None)
            if timer is not None:
                timer.cancel()

        def _close_waiting(self) -> None:
            self._stop_waiting()
            if not self.transport.is_closing():
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._answered_cycle or self.conn.their_state is h11.ERROR:
                self._stop_waiting()  # a request's headers came (or the connection broke)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request: then nothing waits
            if not self.transport.is_closing() and self.cycle.response_complete:
                # the next request's headers, on a kept-alive connection; also ends a body left unread (an early
                # 413) that a client would trickle: every byte stops uvicorn's keep-alive timer
                self._await_headers()

        def connection_lost(self, exc) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

    return GuardedH11Protocol
