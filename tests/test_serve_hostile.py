"""serve.py under careless and hostile clients (issue 39): text the tokenizer cannot take, a request whose decode
fails beside good ones, idle and slow connections, clients that go away, requests past their time budget, Host
headers, the offline /docs; a real uvicorn server on a free loopback port where only it shows the behaviour.

Waits on the server's state are polls with generous hang guards; decodes are held on events or steps counted,
never timed.
"""
import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("fastapi", reason="serve.py needs fastapi (pip install -e '.[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (pip install -e '.[test]')")

import httpx  # noqa: E402
from conftest import load_generate_cli, random_abstracts, run_generate_cli  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_serve import LOCAL, HeldDecode, as_pairs, rounded, run_with_app, until  # noqa: E402

from seq2seq_rdrop import rerank  # noqa: E402
from seq2seq_rdrop.generation import GenerationError  # noqa: E402
from seq2seq_rdrop.serving import (DecodeCancelled, ServerSettings, create_app, decode_with,  # noqa: E402
                                   host_warning, server_config)

MAX_LEN = 5
HANG_GUARD_S = 120  # only against a hang: every wait below ends long before on any machine
SURROGATE_BODY = b'{"abstracts": ["\\u4e00\\u4e01", "\\ud800\\u4e00\\u4e01"], "max_len": 3}'  # lone U+D800

pytestmark = pytest.mark.usefixtures("one_thread")
cli_module = load_generate_cli("generate_cli_serve_hostile")


# --------------------------------------------------------------------------------------- text the tokenizer takes


def test_a_lone_surrogate_is_refused_in_one_line_naming_the_abstract(api):
    with TestClient(create_app(api), base_url=LOCAL) as client:
        answer = client.post("/v1/titles", content=SURROGATE_BODY, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("abstract 2 holds U+D800 at character 1, a lone surrogate")
    with pytest.raises(GenerationError, match=r"^abstract 1 holds U\+DFFF at character 2") as raised:
        api.generate(["一\udfff丁"])
    assert "\n" not in str(raised.value)


def test_generate_py_names_the_file_and_line_of_a_lone_surrogate(ckpt, tmp_path, monkeypatch, capsys):
    source = tmp_path / "abstracts.jsonl"
    source.write_text('{"abstract": "一丁丂七"}\n{"abstract": "\\ud800一丁"}\n', encoding="utf-8")
    rc, out, err = run_generate_cli(cli_module, monkeypatch, capsys, f"checkpoint={ckpt}", f"input={source}",
                                    f"decode.max_len={MAX_LEN}")
    assert rc != 0 and out == ""
    assert err.strip().splitlines() == [f"error: input {source} line 2: the abstract holds U+D800 at character 1, a "
                                        "lone surrogate code point that is not text: send the abstract as valid "
                                        "Unicode (UTF-8) (skip_bad_lines=true skips such lines)"]


def test_an_unexpected_decode_failure_fails_only_the_request_that_caused_it(api):
    """A good and a bad request decoded in one batch: the batch fails, is decoded again request by request,
    and only the bad one gets the error (500, one line); the good one gets its titles."""
    good, bad = random_abstracts(1, seed=20), ["丁丂七丁丂七丁丂七"]
    held = HeldDecode(api, max_batch=8)

    def decode_failing_on_bad(abstracts, options, cancelled):
        if bad[0] in abstracts:
            raise RuntimeError("the tokenizer choked\non this abstract")
        return held(abstracts, options, cancelled)

    app = create_app(api, ServerSettings(max_batch=8, max_wait_ms=0), decode=decode_failing_on_bad)
    first = random_abstracts(1, seed=21)
    body = {"max_len": MAX_LEN}

    async def scenario(http, batcher):
        sent = [asyncio.create_task(http.post("/v1/titles", json={"abstracts": first, **body}))]
        await until(lambda: batcher.decoding)  # held: the next two wait, and then join in one batch
        sent += [asyncio.create_task(http.post("/v1/titles", json={"abstracts": abstracts, **body}))
                 for abstracts in (good, bad)]
        await until(lambda: batcher.waiting == 2)
        held.release.set()
        return [await answer for answer in sent], batcher.retried

    (first_answer, good_answer, bad_answer), retried = run_with_app(app, scenario)
    assert first_answer.status_code == good_answer.status_code == 200
    assert as_pairs(good_answer.json()["titles"]) == rounded(api.hypotheses(good, **body))
    assert bad_answer.status_code == 500
    assert bad_answer.json()["detail"] == "decoding failed: the tokenizer choked on this abstract"
    assert retried == 1 and held.batches == [first, good]  # the good one decoded alone after the failed batch


# --------------------------------------------------------------------------------------- a real server


@contextmanager
def serving(app, settings: ServerSettings):
    """uvicorn serving `app` as serve.py does (server_config) on a free loopback port, in a thread; stopped at
    the end. Yields (host, port, batcher)."""
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(512)
    server = uvicorn.Server(server_config(app, settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: server.started, "the server to start")
        yield listening.getsockname()[:2], app.state.batcher
    finally:
        server.should_exit = True
        thread.join(HANG_GUARD_S)
        listening.close()
    assert not thread.is_alive(), "the server did not stop"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_GUARD_S} s for {what}")
        time.sleep(0.01)


def _closed_by_server(sock: socket.socket) -> bool:
    """The server closed `sock` (it reads end of file or a reset); False while it stays open."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _connect(address) -> socket.socket:
    return socket.create_connection(address, timeout=HANG_GUARD_S)


def _post_bytes(address, body: bytes, declared: int | None = None) -> socket.socket:
    """A socket that has sent a POST /v1/titles with `body` (and Content-Length `declared`, default its size)."""
    sock = _connect(address)
    host = f"{address[0]}:{address[1]}"
    sock.sendall(f"POST /v1/titles HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body) if declared is None else declared}\r\n\r\n".encode() + body)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the answer on `sock`, read until the server closes it or the body is in."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_idle_connections_are_closed_and_never_keep_a_client_out(api):
    """40 sockets that open and send half a request's headers: beyond max_connections the oldest are closed at
    once, the rest after header_timeout_s; meanwhile a client gets /healthz and titles."""
    settings = ServerSettings(max_connections=10, header_timeout_s=1, log_level="warning")
    with serving(create_app(api, settings), settings) as (address, _):
        idle = []
        for _ in range(40):
            sock = _connect(address)
            sock.sendall(b"POST /v1/titles HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            idle.append(sock)
        url = f"http://{address[0]}:{address[1]}"
        with httpx.Client(base_url=url, timeout=HANG_GUARD_S) as http:
            assert http.get("/healthz").status_code == 200
            answer = http.post("/v1/titles", json={"abstracts": random_abstracts(1, seed=22), "max_len": MAX_LEN})
            assert answer.status_code == 200
        _wait_for(lambda: all(_closed_by_server(s) for s in idle), "every idle socket to be closed")
        for sock in idle:
            sock.close()


def test_a_body_shorter_than_its_content_length_is_answered_408_and_closed(api):
    settings = ServerSettings(body_timeout_s=0.5, log_level="warning")
    with serving(create_app(api, settings), settings) as (address, _):
        with _post_bytes(address, b'{"abstracts": ["', declared=100) as sock:
            status, headers, body = _read_answer(sock)
            assert status == 408 and headers["connection"] == "close"
            assert body["detail"] == ("the body did not arrive within 0.5 s (server.body_timeout_s): 16 bytes came "
                                      "of the 100 declared")
            _wait_for(lambda: _closed_by_server(sock), "the connection to be closed")


def test_too_many_requests_at_once_get_json_503_with_retry_after_and_healthz_still_answers(api):
    """queue_size 1 and max_batch 1: 4 requests at once at most (2 x (1 + 1)); four clients stall in their
    bodies, the fifth request is refused in JSON, /healthz is answered, and once they go, requests pass again."""
    settings = ServerSettings(queue_size=1, max_batch=1, retry_after_s=7, log_level="warning")
    with serving(create_app(api, settings), settings) as (address, _):
        stalled = [_post_bytes(address, b'{"abst', declared=50) for _ in range(4)]
        url = f"http://{address[0]}:{address[1]}"
        body = {"abstracts": random_abstracts(1, seed=23), "max_len": MAX_LEN}
        with httpx.Client(base_url=url, timeout=HANG_GUARD_S) as http:
            _wait_for(lambda: http.post("/v1/titles", json=body).status_code == 503, "the limit to be reached")
            refused = http.post("/v1/titles", json=body)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
            assert refused.json()["detail"].startswith("the server is busy: 4 requests are being handled")
            assert http.get("/healthz").status_code == 200
            for sock in stalled:
                sock.close()
            _wait_for(lambda: http.post("/v1/titles", json=body).status_code == 200, "the stalled requests to end")


def test_a_client_that_goes_away_is_dropped_from_the_queue_and_its_decode_stopped(api, monkeypatch):
    """Under uvicorn: a heavy request's decode is held at its first step; a second request waits behind it.
    Both clients go away: the waiting one is dropped undecoded, the heavy decode stops at its next step (one
    step taken of up to 40), and a later request is decoded at once."""
    decoded, steps, flags = [], [], []
    real_step, decode = type(api.model).step, decode_with(api, 16)

    def recording_decode(abstracts, options, cancelled):
        decoded.append(list(abstracts))
        flags.append(cancelled)
        return decode(abstracts, options, cancelled)

    def step_held_until_nobody_waits(model, *args, **kwargs):
        steps.append(len(decoded))
        if len(decoded) == 1 and not flags[0].wait(HANG_GUARD_S):
            raise RuntimeError("the server never stopped the abandoned decode")
        return real_step(model, *args, **kwargs)

    monkeypatch.setattr(type(api.model), "step", step_held_until_nobody_waits)
    settings = ServerSettings(max_batch=1, max_wait_ms=0, log_level="warning")
    heavy = json.dumps({"abstracts": random_abstracts(1, seed=24), "beam_size": 8, "max_len": 20}).encode()
    queued = json.dumps({"abstracts": ["丁丂七丁丂七"], "max_len": MAX_LEN}).encode()
    with serving(create_app(api, settings, decode=recording_decode), settings) as (address, batcher):
        heavy_client = _post_bytes(address, heavy)
        _wait_for(lambda: len(steps) == 1, "the heavy decode's first step")
        queued_client = _post_bytes(address, queued)
        _wait_for(lambda: batcher.waiting == 1, "the second request to wait")
        queued_client.close()
        _wait_for(lambda: batcher.waiting == 0, "the gone request to leave the queue")
        heavy_client.close()
        _wait_for(lambda: not batcher.decoding, "the abandoned decode to stop")
        with httpx.Client(base_url=f"http://{address[0]}:{address[1]}", timeout=HANG_GUARD_S) as http:
            later = http.post("/v1/titles", json={"abstracts": random_abstracts(1, seed=25), "max_len": MAX_LEN})
        assert later.status_code == 200
        assert batcher.stopped == 1 and batcher.dropped == 1
    assert steps.count(1) == 1  # the held step; the next one raised DecodeCancelled
    assert len(decoded) == 2 and ["丁丂七丁丂七"] not in decoded


# --------------------------------------------------------------------------------------- one time budget


def test_the_time_budget_covers_re_ranking_which_stops_between_candidates(api, monkeypatch):
    """The search is done; the re-ranker's first comparison blocks until the request's budget has run out:
    the request is answered 504, the re-ranker stops at its next candidate, the server decodes on."""
    compared, flags = [], []
    real_rouge_l, decode = rerank.rouge_l, decode_with(api, 16)

    def decode_keeping_the_flag(abstracts, options, cancelled):
        flags.append(cancelled)
        return decode(abstracts, options, cancelled)

    def rouge_l_held_until_stopped(reference, prediction):
        compared.append(1)
        if len(flags) == 1 and not flags[0].wait(HANG_GUARD_S):
            raise RuntimeError("the server never stopped the re-ranking")
        return real_rouge_l(reference, prediction)

    monkeypatch.setattr(rerank, "rouge_l", rouge_l_held_until_stopped)
    app = create_app(api, ServerSettings(decode_timeout_s=1), decode=decode_keeping_the_flag)
    body = {"abstracts": random_abstracts(1, seed=26), "max_len": MAX_LEN, "beam_size": 4, "num_return": 4,
            "rerank": {"mbr": 1.0, "rule": 1.0}}

    async def scenario(http, batcher):
        stopped = await http.post("/v1/titles", json=body)
        await until(lambda: not batcher.decoding)
        return stopped, batcher.stopped, await http.post("/v1/titles", json={**body, "rerank": "none"})

    stopped, n_stopped, after = run_with_app(app, scenario)
    assert stopped.status_code == 504 and "re-ranking included" in stopped.json()["detail"]
    assert n_stopped == 1 and 1 <= len(compared) <= 4  # the first candidate's comparisons, not 4 x (3 + rule)
    assert after.status_code == 200


def test_bounded_re_ranking_stops_on_its_check_and_caps_mbr_evidence_without_changing_short_lists():
    titles = ["一丁丂", "一丁七", "丁丂七", "一七丂", "丂丁一", "七七丁"]
    log_probs = [-1.0, -1.5, -2.0, -2.2, -3.0, -4.0]
    scores = [lp / 3 for lp in log_probs]
    exact = rerank.features(titles, scores, log_probs, "一丁丂七的研究")
    with rerank.bounded(mbr_evidence=6):
        assert rerank.features(titles, scores, log_probs, "一丁丂七的研究") == exact  # bit for bit
    with rerank.bounded(mbr_evidence=2):
        capped = rerank.features(titles, scores, log_probs, "一丁丂七的研究")
    mbr = rerank.FEATURES.index("mbr")
    assert [row[:mbr] + row[mbr + 1:] for row in capped] == [row[:mbr] + row[mbr + 1:] for row in exact]
    assert [row[mbr] for row in capped] != [row[mbr] for row in exact]

    def stop():
        raise DecodeCancelled()

    with rerank.bounded(check=stop), pytest.raises(DecodeCancelled):
        rerank.features(titles, scores, log_probs, "一丁丂七的研究")


def test_healthz_says_where_the_decoding_time_went(api):
    with TestClient(create_app(api), base_url=LOCAL) as client:
        body = {"abstracts": random_abstracts(2, seed=27), "max_len": MAX_LEN, "beam_size": 4,
                "rerank": {"mbr": 1.0}}
        assert client.post("/v1/titles", json=body).status_code == 200
        seconds = client.get("/healthz").json()["seconds"]
    assert {"decoding", "tokenize", "search", "rerank", "detokenize"} <= set(seconds)
    assert seconds["decoding"] >= seconds["search"] > 0


# --------------------------------------------------------------------------------------- hosts, /docs, HEAD


@pytest.mark.parametrize("settings, host, status", [
    (ServerSettings(), "127.0.0.1:8000", 200),
    (ServerSettings(), "localhost", 200),
    (ServerSettings(), "[::1]:8000", 200),
    (ServerSettings(), "attacker.example:8000", 400),
    (ServerSettings(allowed_hosts=["titles.example.org"]), "titles.example.org", 200),
    (ServerSettings(allowed_hosts=["titles.example.org"]), "127.0.0.1", 400),
    (ServerSettings(host="0.0.0.0"), "anything.example", 200),
    (ServerSettings(allowed_hosts=["*"]), "anything.example", 200),
], ids=["loopback", "localhost", "ipv6", "rebinding", "allowed", "not-allowed", "wildcard", "star"])
def test_host_headers_are_checked_against_the_bound_host_or_allowed_hosts(api, settings, host, status):
    with TestClient(create_app(api, settings), base_url=LOCAL) as client:
        answer = client.get("/healthz", headers={"Host": host})
    assert answer.status_code == status
    if status == 400:
        assert "is not a name this server answers to" in answer.json()["detail"]
        assert "server.allowed_hosts" in answer.json()["detail"]


def test_a_host_beyond_loopback_is_warned_about():
    assert host_warning(ServerSettings()) is None
    assert host_warning(ServerSettings(host="::1")) is None
    warning = host_warning(ServerSettings(host="0.0.0.0"))
    assert warning.startswith("warning: server.host=0.0.0.0 serves every network interface")
    assert "set server.allowed_hosts" in warning and "\n" not in warning


def test_docs_are_off_by_default_openapi_json_stays_and_head_of_the_page_answers(api):
    with TestClient(create_app(api), base_url=LOCAL) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 200
        head = client.head("/")
        assert head.status_code == 200 and head.headers["content-type"].startswith("text/html")
    with TestClient(create_app(api, ServerSettings(docs=True)), base_url=LOCAL) as client:
        assert client.get("/docs").status_code == 200
