"""serve.py's HTTP API (seq2seq_rdrop/serving.py) on a tiny checkpoint made here, through FastAPI's test client.

Concurrency tests hold the worker's decode on an event, so that which requests wait, join a batch or are
refused depends on no timing; waits on the server's state are polls with generous hang guards.
"""
import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi", reason="serve.py needs fastapi (pip install -e '.[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (pip install -e '.[test]')")

import httpx  # noqa: E402
from conftest import load_generate_cli, random_abstracts, run_generate_cli  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from seq2seq_rdrop.generation import json_score  # noqa: E402
from seq2seq_rdrop.serving import (DecodeCancelled, ServerSettings, create_app, decode_with,  # noqa: E402
                                   stop_between_steps)

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_LEN = 5  # short titles, fast beams
HANG_GUARD_S = 120  # only against a hang: every wait below ends long before on any machine
LOCAL = "http://127.0.0.1"  # the Host the server answers to by default (loopback)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models gain nothing from threads
cli_module = load_generate_cli("generate_cli_serve")


@pytest.fixture(scope="module")
def client(api, ckpt):
    settings = ServerSettings(max_abstracts=6, max_chars=60, max_total_chars=150, max_body_bytes=2000)
    with TestClient(create_app(api, settings, checkpoint=str(ckpt)), base_url=LOCAL) as test_client:
        yield test_client


def post(client, body, **kwargs):
    return client.post("/v1/titles", json=body, **kwargs)


def as_pairs(rows) -> list[list[tuple[str, float]]]:
    return [[(h["title"], h["score"]) for h in row] for row in rows]


def rounded(rows) -> list[list[tuple[str, float]]]:
    return [[(title, json_score(score)) for title, score in row] for row in rows]


# --------------------------------------------------------------------------------------- titles


def test_titles_equal_generate_py_for_the_same_checkpoint_and_options(client, ckpt, tmp_path, monkeypatch, capsys):
    abstracts = random_abstracts(5, seed=3)
    (tmp_path / "abstracts.txt").write_text("\n".join(abstracts) + "\n", encoding="utf-8")
    rc, out, err = run_generate_cli(cli_module, monkeypatch, capsys, f"checkpoint={ckpt}",
                                    f"input={tmp_path / 'abstracts.txt'}", "output_format=jsonl",
                                    f"decode.max_len={MAX_LEN}", "decode.beam_size=4", "decode.num_return=3")
    assert rc == 0, err
    expected = [[(h["title"], h["score"]) for h in json.loads(line)["nbest"]] for line in out.splitlines()]

    answer = post(client, {"abstracts": abstracts, "max_len": MAX_LEN, "beam_size": 4, "num_return": 3})
    assert answer.status_code == 200, answer.text
    assert as_pairs(answer.json()["titles"]) == expected
    assert answer.json()["decode"]["beam_size"] == 4


@pytest.mark.parametrize("options", [
    {},  # the checkpoint's own
    {"strategy": "sample", "top_p": 0.9, "num_return": 3, "seed": 7},
    {"beam_size": 4, "beam_groups": 4, "diversity_penalty": 1.0, "num_return": 4},
    {"beam_size": 4, "num_return": 2, "rerank": {"rule": 1.0, "len": 0.5}},
], ids=["checkpoint", "sample", "diverse", "reranked"])
def test_titles_equal_the_api_for_each_search(client, api, options):
    abstracts = random_abstracts(3, seed=4)
    answer = post(client, {"abstracts": abstracts, "max_len": MAX_LEN, **options})
    assert answer.status_code == 200, answer.text
    assert as_pairs(answer.json()["titles"]) == rounded(api.hypotheses(abstracts, max_len=MAX_LEN, **options))


def test_healthz_names_the_model_its_defaults_and_limits(client, api, ckpt):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["checkpoint"] == str(ckpt) and health["family"] == "unilm"
    assert health["decode"] == api.decode
    assert health["limits"]["max_abstracts"] == 6


def test_page_has_the_text_box_button_and_the_three_searches(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for part in ('<textarea id="abstract"', '<button id="go">titles</button>', 'value="beam"', 'value="diverse"',
                 'value="sample"', "copy"):
        assert part in page.text


def test_openapi_page_documents_the_request_body(client):
    schema = client.get("/openapi.json").json()["paths"]["/v1/titles"]["post"]["requestBody"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    assert properties["abstracts"]["type"] == "array" and properties["top_p"]["type"] == "number"
    assert {kind["type"] for kind in properties["rerank"]["anyOf"]} == {"string", "object"}


# --------------------------------------------------------------------------------------- bad input and limits

BAD_BODIES = [
    ({"abstracts": []}, 422, '"abstracts" is empty'),
    ({}, 422, '"abstracts" is missing'),
    ({"abstracts": "一丁"}, 422, "must be a list of strings, not str"),
    ({"abstracts": ["一丁", 3]}, 422, "abstract 2 is int: every abstract must be non-empty text"),
    ({"abstracts": ["  "]}, 422, "abstract 1 is empty"),
    ([1, 2], 422, "the body must be a JSON object"),
    ({"abstracts": ["一丁"], "beam": 3}, 422, "unknown decoding option 'beam'; known: beam_size"),
    ({"abstracts": ["一丁"], "beam_size": 0}, 422, "decode.beam_size=0: allowed values are integers >= 1"),
    ({"abstracts": ["一丁"], "top_p": 1.5}, 422, "decode.top_p=1.5: allowed values are numbers in (0, 1]"),
    ({"abstracts": ["一丁"], "beam_size": 2, "num_return": 3}, 422, "decode.num_return=3 cannot exceed decode.beam_size=2"),
    ({"abstracts": ["一丁"], "beam_size": "4"}, 422, "decode.beam_size='4': an integer is required"),
    ({"abstracts": ["一丁"], "max_len": 60}, 422, "exceed the model's 64 positions"),
    ({"abstracts": ["一丁"], "rerank": {"colour": 1}}, 422, "'colour' is not a feature; allowed features are lp,"),
    ({"abstracts": ["一丁"] * 7}, 413, "7 abstracts in one request; at most 6 (server.max_abstracts)"),
    ({"abstracts": ["一" * 61]}, 413, "abstract 1 has 61 characters; at most 60 (server.max_chars)"),
    ({"abstracts": ["一" * 50] * 4}, 413, "200 characters in all; at most 150 per request (server.max_total_chars)"),
]


@pytest.mark.parametrize("body, status, message", BAD_BODIES, ids=[m[:30] for _, _, m in BAD_BODIES])
def test_bad_requests_get_a_status_and_one_line(client, body, status, message):
    answer = post(client, body)
    assert answer.status_code == status
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail


@pytest.mark.parametrize("content, headers, status, message", [
    (b'{"abstracts": ["\xff\xfe"]}', {"Content-Type": "application/json"}, 400, "not valid UTF-8 (byte 16)"),
    (b'{"abstracts": [', {"Content-Type": "application/json"}, 400, "the body is not JSON"),
    (b"[" * 1900, {"Content-Type": "application/json"}, 400, "nested too deeply"),
    (b'{"abstracts": ["x"]}', {"Content-Type": "text/plain"}, 415, "Content-Type must be application/json, not text/plain"),
    (b'{"abstracts": ["x"]}', {}, 415, "Content-Type must be application/json, not missing"),
    (b'{"abstracts": ["' + "一".encode() * 700 + b'"]}', {"Content-Type": "application/json"}, 413,
     "the body exceeds 2000 bytes (server.max_body_bytes)"),
], ids=["utf8", "json", "deep", "content-type", "no-content-type", "body-size"])
def test_undecodable_or_oversize_bodies(client, content, headers, status, message):
    answer = client.post("/v1/titles", content=content, headers=headers)
    assert answer.status_code == status
    assert message in answer.json()["detail"]


def test_an_oversize_body_without_content_length_is_cut_off_while_streamed(client):
    chunks = iter([b'{"abstracts": ["', b"x" * 1500, b"x" * 1500, b'"]}'])  # chunked: no Content-Length
    answer = client.post("/v1/titles", content=chunks, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "server.max_body_bytes" in answer.json()["detail"]


def test_charset_parameter_of_the_content_type_is_accepted(client):
    answer = client.post("/v1/titles", content=json.dumps({"abstracts": ["一丁丂七"], "max_len": 3}).encode(),
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 200


# --------------------------------------------------------------------------------------- batching, queue, timeout


class HeldDecode:
    """The server's decode, held at its first call until `release` is set; records each batch's abstracts."""

    def __init__(self, generator, max_batch: int):
        self.decode = decode_with(generator, max_batch)
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, abstracts, options, cancelled):
        self.batches.append(list(abstracts))
        if not self.release.wait(HANG_GUARD_S):
            raise RuntimeError("the test never released the decode")
        return self.decode(abstracts, options, cancelled)


async def until(condition) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), HANG_GUARD_S)


def run_with_app(app, scenario):
    """scenario(client, batcher) in one event loop, with the app started (its worker running)."""

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as http:
                return await scenario(http, app.state.batcher)

    return asyncio.run(main())


def test_waiting_requests_with_the_same_options_are_decoded_together_with_their_own_titles(api):
    held = HeldDecode(api, max_batch=8)
    app = create_app(api, ServerSettings(max_batch=8, max_wait_ms=0), decode=held)
    first, same, other = random_abstracts(1, seed=5), random_abstracts(5, seed=6), random_abstracts(2, seed=7)
    beam = {"max_len": MAX_LEN, "beam_size": 3}

    async def scenario(http, batcher):
        sent = [asyncio.create_task(http.post("/v1/titles", json={"abstracts": first, **beam}))]
        await until(lambda: batcher.decoding)
        sent += [asyncio.create_task(http.post("/v1/titles", json={"abstracts": same[:2], **beam})),
                 asyncio.create_task(http.post("/v1/titles", json={"abstracts": other, **beam, "beam_size": 2})),
                 asyncio.create_task(http.post("/v1/titles", json={"abstracts": same[2:], **beam}))]
        await until(lambda: batcher.waiting == 3)
        held.release.set()
        return [await answer for answer in sent]

    answers = run_with_app(app, scenario)
    assert [a.status_code for a in answers] == [200] * 4
    assert held.batches == [first, same, other]  # the two requests with the same options joined in one decode
    for answer, abstracts, options in zip(answers, [first, same[:2], other, same[2:]],
                                          [beam, beam, {**beam, "beam_size": 2}, beam]):
        assert as_pairs(answer.json()["titles"]) == rounded(api.hypotheses(abstracts, **options))


def test_a_full_queue_answers_503_with_retry_after_and_the_waiting_requests_are_still_answered(api):
    held = HeldDecode(api, max_batch=4)
    app = create_app(api, ServerSettings(max_batch=4, queue_size=1, retry_after_s=3), decode=held)
    body = {"abstracts": random_abstracts(1, seed=8), "max_len": MAX_LEN}

    async def scenario(http, batcher):
        decoding = asyncio.create_task(http.post("/v1/titles", json=body))
        await until(lambda: batcher.decoding)
        waiting = asyncio.create_task(http.post("/v1/titles", json=body))
        await until(lambda: batcher.waiting == 1)
        refused = await http.post("/v1/titles", json=body)
        held.release.set()
        return refused, await decoding, await waiting

    refused, decoded, waited = run_with_app(app, scenario)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
    assert "1 requests are waiting (server.queue_size)" in refused.json()["detail"]
    assert decoded.status_code == waited.status_code == 200
    assert decoded.json()["titles"] == waited.json()["titles"]


def test_a_decode_past_its_time_limit_is_stopped_between_steps_and_answered_504(api, monkeypatch):
    """The model's first step blocks until the server gives up on the decode (its `cancelled` flag): the decode
    is stopped at the next step, answered 504, and the next request is decoded as usual."""
    flags, steps, blocking = [], [], {"on": True}
    real_step, decode = type(api.model).step, decode_with(api, 16)

    def decode_keeping_the_flag(abstracts, options, cancelled):
        flags.append(cancelled)
        return decode(abstracts, options, cancelled)

    def step_until_cancelled(model, *args, **kwargs):
        steps.append(1)
        if blocking["on"] and not flags[-1].wait(HANG_GUARD_S):
            raise RuntimeError("the server never cancelled the decode")
        return real_step(model, *args, **kwargs)

    monkeypatch.setattr(type(api.model), "step", step_until_cancelled)
    app = create_app(api, ServerSettings(decode_timeout_s=2), decode=decode_keeping_the_flag)
    body = {"abstracts": random_abstracts(1, seed=9), "max_len": MAX_LEN}

    async def scenario(http, batcher):
        stopped = await http.post("/v1/titles", json=body)
        taken = len(steps)
        blocking["on"] = False
        return stopped, taken, await http.post("/v1/titles", json=body)

    stopped, taken, after = run_with_app(app, scenario)
    assert stopped.status_code == 504 and "longer than 2 s (server.decode_timeout_s" in stopped.json()["detail"]
    assert taken == 1  # the step that waited; the next one was refused
    assert after.status_code == 200


def test_stop_between_steps_stops_a_decode_at_its_next_step_and_restores_the_model(api):
    cancelled = threading.Event()
    cancelled.set()
    with stop_between_steps(api.model, cancelled):
        with pytest.raises(DecodeCancelled):
            api.hypotheses(random_abstracts(2, seed=10), max_len=MAX_LEN)
    assert "step" not in vars(api.model)
    assert api.hypotheses(random_abstracts(1, seed=10), max_len=MAX_LEN)  # decodes as before


def test_a_client_that_went_away_is_skipped(api):
    held = HeldDecode(api, max_batch=4)
    app = create_app(api, ServerSettings(max_batch=4, max_wait_ms=0), decode=held)
    body = {"abstracts": random_abstracts(1, seed=11), "max_len": MAX_LEN}

    async def scenario(http, batcher):
        first = asyncio.create_task(http.post("/v1/titles", json=body))
        await until(lambda: batcher.decoding)
        gone = asyncio.create_task(http.post("/v1/titles", json={**body, "abstracts": ["丁丂七"]}))
        await until(lambda: batcher.waiting == 1)
        gone.cancel()
        held.release.set()
        answer = await first
        await until(lambda: not batcher.decoding and batcher.waiting == 0)
        return answer, await http.post("/v1/titles", json=body)

    first, again = run_with_app(app, scenario)
    assert first.status_code == again.status_code == 200
    assert ["丁丂七"] not in held.batches


# --------------------------------------------------------------------------------------- serve.py and its config


def test_settings_defaults_match_conf_serve_yaml():
    conf = yaml.safe_load((REPO_ROOT / "conf" / "serve.yaml").read_text(encoding="utf-8"))
    assert conf["server"] == ServerSettings().__dict__


@pytest.mark.parametrize("args, message", [
    ([], "checkpoint=??? must be set"),
    (["checkpoint=x", "server.max_batch=0"], "server.max_batch=0: allowed values are integers >= 1"),
    (["checkpoint=x", "server.port=70000"], "server.port=70000: allowed values are integers from 0 to 65535"),
    (["checkpoint=x", "server.decode_timeout_s=0"], "server.decode_timeout_s=0: allowed values are numbers > 0"),
    (["checkpoint=x", "+server.workers=2"], "unknown option 'server.workers'"),
    (["checkpoint=x", "server.allowed_hosts=[a/b]"], "server.allowed_hosts=['a/b']: allowed values are null"),
])
def test_serve_py_option_errors_are_one_line_with_exit_status_2(args, message):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "serve.py"), *args], capture_output=True, text=True,
                          timeout=HANG_GUARD_S, cwd=REPO_ROOT)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
