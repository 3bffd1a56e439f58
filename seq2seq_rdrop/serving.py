"""Titles over HTTP: the FastAPI app of serve.py and its micro-batcher.

    app = create_app(TitleGenerator.from_pretrained(path), ServerSettings(), checkpoint=path)

    POST /v1/titles {"abstracts": ["..."], "num_return": 3, ...}  -> {"titles": [[{"title", "score"}, ...]], "decode"}
    GET /healthz  (model, decoding defaults, limits, queue)   GET /  (the page)   GET /docs  (FastAPI's OpenAPI page)

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
once; uvicorn refuses connections beyond limit_concurrency (run_server).

A decode that runs past server.decode_timeout_s is stopped at its next step (stop_between_steps) and its
requests answered 504; the next batch starts only once it has stopped.
"""
# no `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at run time

import asyncio
import json
import socket
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from .config_checks import DEVICE, Checker
from .errors import ConfigError, show
from .generation import DEFAULT_DECODE, GenerationError, checked_abstracts, json_score
from .rerank import FEATURES, NO_RERANK
from .option_schema import choice, integer, number, text

PAGE = Path(__file__).with_name("serve_page.html")
SERVE_KEYS = ("checkpoint", "device", "max_source_len", "keep_case", "server")  # conf/serve.yaml's top level
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")  # uvicorn's


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
    log_level: str = choice("info", LOG_LEVELS)

    def limits(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("host", "port", "log_level")}


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


async def read_body(request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    too_large = RequestError(413, f"the body exceeds {limit} bytes (server.max_body_bytes)")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
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

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.options.items()))


class MicroBatcher:
    """Gathers waiting requests with the same decoding options into one decode (module docstring).

    decode(abstracts, options, cancelled: threading.Event) -> one result per abstract, run in one worker
    thread; it should stop soon after `cancelled` is set (raising DecodeCancelled)."""

    def __init__(self, decode: Callable, settings: ServerSettings):
        self._decode, self._settings = decode, settings
        self._waiting: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.decoding = False  # a decode is running (healthz, tests)
        self.batches = 0  # decodes run so far

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
        """The results of `abstracts`, once decoded; QueueFull at once when queue_size requests wait."""
        if len(self._waiting) >= self._settings.queue_size:
            raise QueueFull()
        pending = _Pending(abstracts, options, asyncio.get_running_loop().create_future())
        self._waiting.append(pending)
        self._arrived.set()
        return await pending.future  # a client that goes away cancels it: the worker skips it

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
        if not live:
            return
        abstracts = [a for p in live for a in p.abstracts]
        cancelled = threading.Event()
        work = asyncio.get_running_loop().run_in_executor(self._executor, self._decode, abstracts,
                                                          live[0].options, cancelled)
        self.decoding = True
        try:
            done, _ = await asyncio.wait({work}, timeout=self._settings.decode_timeout_s)
            if not done:
                cancelled.set()  # the decode stops at its next step; the next batch waits for that
            results, error = await _outcome(work, self._settings.decode_timeout_s)
        except asyncio.CancelledError:
            cancelled.set()  # the server is stopping
            raise
        finally:
            self.decoding = False
            self.batches += 1
        _answer(live, results, error)


async def _outcome(work: asyncio.Future, timeout_s: float) -> tuple[list | None, Exception | None]:
    try:
        return await work, None
    except DecodeCancelled:
        return None, RequestError(504, f"decoding took longer than {timeout_s:g} s (server.decode_timeout_s) and "
                                       "was stopped: send fewer abstracts or ask for fewer beams or titles")
    except Exception as e:  # answered to the batch's requests, the server goes on
        return None, e


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
    """While in the block, model.step raises DecodeCancelled once `cancelled` is set. decoding.py's searches
    call model.step once per title token, so a decode stops within one step of its time limit, whatever its
    batch, without the searches knowing. The wrapper lives on the instance, for the block only."""
    real_step = model.step

    def step(*args, **kwargs):
        if cancelled.is_set():
            raise DecodeCancelled()
        return real_step(*args, **kwargs)

    model.step = step
    try:
        yield
    finally:
        del model.step


def decode_with(generator, batch_size: int) -> Callable:
    """MicroBatcher's decode for a TitleGenerator: hypotheses() in batches of batch_size, stoppable."""

    def decode(abstracts: list[str], options: dict, cancelled: threading.Event) -> list:
        with stop_between_steps(generator.model, cancelled):
            return generator.hypotheses(abstracts, batch_size=batch_size, **options)

    return decode


# --------------------------------------------------------------------------------------- the app


def create_app(generator, settings: ServerSettings | None = None, checkpoint: str = "", decode: Callable | None = None):
    """The FastAPI app serving `generator` (a TitleGenerator). `decode` replaces decode_with(generator) (tests)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    settings = settings or ServerSettings()
    batcher = MicroBatcher(decode or decode_with(generator, settings.max_batch), settings)

    @asynccontextmanager
    async def lifespan(app):
        worker = batcher.start()
        yield
        worker.cancel()
        with suppress(asyncio.CancelledError):
            await worker

    app = FastAPI(title="seq2seq-rdrop titles", lifespan=lifespan,
                  description="Paper titles for Chinese abstracts (CSL). POST /v1/titles; the page is at /.")
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def request_error(request: Request, e: RequestError):
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=e.headers)

    @app.post("/v1/titles", openapi_extra=_request_schema())
    async def titles(request: Request) -> dict:
        """Titles with their scores (length-normalised log-probability, higher is better), best first, per abstract."""
        require_json(request)
        abstracts, options = parse_titles_request(await read_body(request, settings.max_body_bytes),
                                                  generator, settings)
        rows = await _submit(batcher, abstracts, options, settings)
        return {"titles": [[{"title": t, "score": json_score(s)} for t, s in row] for row in rows], "decode": options}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "checkpoint": checkpoint, "family": getattr(generator.model, "family", None),
                "decode": generator.decode, "max_source_len": generator.max_source_len,
                "limits": settings.limits(),
                "queue": {"waiting": batcher.waiting, "decoding": batcher.decoding, "batches": batcher.batches}}

    page = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    return app


async def _submit(batcher: MicroBatcher, abstracts: list[str], options: dict, settings: ServerSettings) -> list:
    try:
        return await batcher.submit(abstracts, options)
    except QueueFull:
        raise RequestError(503, f"the server is busy: {settings.queue_size} requests are waiting "
                                "(server.queue_size); retry later",
                           headers={"Retry-After": str(settings.retry_after_s)}) from None
    except GenerationError as e:  # e.g. the batch would not fit in memory
        raise RequestError(422, str(e)) from None


def _request_schema() -> dict:
    """POST /v1/titles's body for the OpenAPI page (the body is read by parse_titles_request, not by FastAPI)."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    options = {k: {"type": kinds[type(v)], "description": "generate.py's decode." + k + "; left out: the checkpoint's"}
               for k, v in DEFAULT_DECODE.items()}
    options["rerank"] = {"anyOf": [{"type": "string", "enum": [NO_RERANK]},
                                   {"type": "object", "additionalProperties": {"type": "number"}}],
                         "description": f"{NO_RERANK}, or weights of the re-ranking features: {', '.join(FEATURES)}"}
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
    for name, field in server.items():
        check.declared(f"server.{name}", field)


def run_server(cfg) -> None:
    """serve.py: check the options, load the checkpoint, listen, serve until interrupted."""
    from omegaconf import OmegaConf

    from .generation import TitleGenerator

    check_serve(cfg)
    settings = ServerSettings(**OmegaConf.to_container(cfg.server, resolve=True))
    generator = TitleGenerator.from_pretrained(cfg.checkpoint, device=cfg.device, max_source_len=cfg.max_source_len,
                                               keep_case=cfg.keep_case)
    app = create_app(generator, settings, checkpoint=str(cfg.checkpoint))
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

    # limit_concurrency: connections beyond those the queue and a batch can hold get uvicorn's 503, so
    # that even many slow clients cannot grow memory without bound
    config = uvicorn.Config(app, log_level=settings.log_level, timeout_graceful_shutdown=5,
                            limit_concurrency=2 * (settings.queue_size + settings.max_batch))
    uvicorn.Server(config).run(sockets=[listening])
