"""Load benchmark of serve.py: titles per second and latency at 1, 4, 16, 64 concurrent clients, with
micro-batching (server.max_batch, default 16) against unbatched serving (server.max_batch=1), and against the
same abstracts decoded offline in generate.py's batches (TitleGenerator.hypotheses, batch_size 32).

    python scripts/bench_serve.py --checkpoint RUN/checkpoint [--clients 1 4 16 64] [--seconds 15]
        [--abstracts 64] [--max-batch 16] [--note "..."] [--out outputs/benchmarks/bench_serve.md]

Both servers are serve.py processes on free loopback ports (--threads torch threads each: server.threads), started
once and loaded in turn: at each client count, the batched server and then the unbatched one (order alternating
by level, so that machine noise hits both). Each client sends one abstract per request (the first --abstracts
dev abstracts, read at run time from $CSL_DATA_DIR or ../shared/data/csl), waits for the answer, and sends the
next, until --seconds have passed; requests in flight then are waited for and counted. Every request must be
answered (200, or 503 when the queue is full): the report counts the lost ones (no answer, a connection error).
Decoding: the checkpoint's own options. Latency: from sending to the whole answer, over the 200s. Peak RSS: the
server process's VmHWM, reset at each level (/proc/PID/clear_refs); the offline row is this process's.
Titles are checked against the offline decode's: the report counts the abstracts whose served title differs.
Where the time went: from each server's /healthz "seconds" before and after a level, the decode worker's time
per title answered in tokenization, search, re-ranking and turning ids into titles, the rest of its decodes,
and the share of the level it sat idle (waiting for requests that the event loop was reading, parsing and
answering: near 0, the decode's cost is the bound).
"""
import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

START_TIMEOUT_S = 600  # only against a hang


@dataclass
class LevelResult:
    clients: int
    seconds: float = 0.0
    latencies: list = field(default_factory=list)  # of the 200s
    statuses: dict = field(default_factory=dict)
    lost: int = 0
    sent: int = 0
    titles: dict = field(default_factory=dict)  # abstract index -> served best title
    batches: int = 0
    peak_rss_mib: float | None = None
    phase_seconds: dict = field(default_factory=dict)  # the server's /healthz "seconds" over the level

    @property
    def answered(self) -> int:
        return self.statuses.get(200, 0)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --------------------------------------------------------------------------------------- servers


class Server:
    """A serve.py process on a free loopback port."""

    def __init__(self, checkpoint: str, max_batch: int, log_dir: Path, threads: int):
        self.log_path = log_dir / f"serve_max_batch{max_batch}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "serve.py"), f"checkpoint={checkpoint}", "server.port=0",
                 f"server.max_batch={max_batch}", "server.log_level=warning", "server.queue_size=64",
                 f"server.threads={threads}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        self.max_batch = max_batch
        self.url = None

    def wait_until_serving(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = re.search(r"serving .* on (http://\S+/)", self.log_path.read_text())
            if found:
                self.url = found.group(1)
                if httpx.get(self.url + "healthz", timeout=60).status_code == 200:
                    return self.url
            if self.process.poll() is not None:
                sys.exit(f"serve.py ended with status {self.process.returncode}: {self.log_path.read_text()}")
            time.sleep(0.5)
        sys.exit(f"serve.py did not start within {START_TIMEOUT_S} s")

    def reset_peak_rss(self) -> bool:
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            return True
        except OSError:
            return False

    def peak_rss_mib(self) -> float | None:
        return _vm_hwm_mib(self.process.pid)

    def counters(self) -> tuple[int, dict]:
        """(decodes so far, seconds so far per phase: decoding = the decode worker busy; tokenize, search,
        rerank, detokenize within it)."""
        health = httpx.get(self.url + "healthz", timeout=60).json()
        return health["queue"]["batches"], health.get("seconds", {})

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _vm_hwm_mib(pid) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------- load


async def run_level(url: str, abstracts: list[str], clients: int, seconds: float) -> LevelResult:
    """`clients` clients, each sending one abstract at a time until `seconds` have passed."""
    result = LevelResult(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=START_TIMEOUT_S) as http:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(_client(http, abstracts, i, deadline, result) for i in range(clients)))
        result.seconds = time.perf_counter() - start
    return result


async def _client(http, abstracts: list[str], first: int, deadline: float, result: LevelResult) -> None:
    index = first
    while time.perf_counter() < deadline:
        which = index % len(abstracts)
        index += 1
        result.sent += 1
        sent = time.perf_counter()
        try:
            answer = await http.post("v1/titles", json={"abstracts": [abstracts[which]]})
        except httpx.HTTPError:
            result.lost += 1
            continue
        result.statuses[answer.status_code] = result.statuses.get(answer.status_code, 0) + 1
        if answer.status_code == 200:
            result.latencies.append(time.perf_counter() - sent)
            result.titles[which] = answer.json()["titles"][0][0]["title"]
        elif answer.status_code == 503:
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


def measure(server: Server, abstracts: list[str], clients: int, seconds: float) -> LevelResult:
    server.reset_peak_rss()
    batches_before, seconds_before = server.counters()
    result = asyncio.run(run_level(server.url, abstracts, clients, seconds))
    batches_after, seconds_after = server.counters()
    result.batches = batches_after - batches_before
    result.phase_seconds = {k: v - seconds_before.get(k, 0.0) for k, v in seconds_after.items()}
    result.peak_rss_mib = server.peak_rss_mib()
    print(f"max_batch={server.max_batch} clients={clients}: {result.answered / result.seconds:.2f} titles/s, "
          f"p95 {result.percentile(0.95):.2f} s, statuses {result.statuses}, lost {result.lost}; "
          f"{where_time_went(result)}", file=sys.stderr)
    return result


PHASES = ("tokenize", "search", "rerank", "detokenize")


def where_time_went(r: LevelResult) -> str:
    """Per title answered, the decode worker's milliseconds in each phase, the rest of its decodes (batching,
    moving tensors, Python between phases), and how much of the level it was idle: waiting for requests while
    the event loop read, parsed, queued and answered them (idle near 0: the decode is the bound)."""
    if not r.answered or "decoding" not in r.phase_seconds:
        return "no timing (an older server)"
    busy = r.phase_seconds["decoding"]
    per_title = {p: 1000 * r.phase_seconds.get(p, 0.0) / r.answered for p in PHASES}
    other = 1000 * busy / r.answered - sum(per_title.values())
    return (", ".join(f"{p} {ms:.1f}" for p, ms in per_title.items()) + f", other {other:.1f} ms per title; "
            f"decode worker idle {max(0.0, 1 - busy / r.seconds):.0%} of the level")


# --------------------------------------------------------------------------------------- offline and report


def offline_decode(checkpoint: str, abstracts: list[str], threads: int) -> tuple[float, list[str], float | None]:
    """generate.py's way: the whole list through TitleGenerator.hypotheses in batches of 32.
    (titles/s, best titles, this process's peak RSS in MiB)."""
    import torch

    from seq2seq_rdrop.generation import DEFAULT_BATCH_SIZE, TitleGenerator

    torch.set_num_threads(threads)  # as each server
    generator = TitleGenerator.from_pretrained(checkpoint, device="cpu")
    generator.hypotheses(abstracts[:2])  # warm-up, untimed
    start = time.perf_counter()
    rows = generator.hypotheses(abstracts, batch_size=DEFAULT_BATCH_SIZE)
    elapsed = time.perf_counter() - start
    return len(abstracts) / elapsed, [row[0][0] for row in rows], _vm_hwm_mib(os.getpid())


def dev_abstracts(n: int) -> list[str]:
    from seq2seq_rdrop.data import read_examples, resolve_data_dir

    return [ex.abstract for ex in read_examples(resolve_data_dir(None) / "dev.tsv")[:n]]


def report(args, offline, results, rss_reset: bool) -> str:
    import torch

    from seq2seq_rdrop.machine import machine_lines

    offline_rate, offline_titles, offline_rss = offline
    lines = ["# serve.py under load: micro-batching vs unbatched serving", ""]
    lines += [f"- {line}" for line in machine_lines(torch.device("cpu"))]
    lines += [f"- checkpoint: {args.checkpoint_name}; the first {args.abstracts} dev abstracts, one per request; "
              f"{args.seconds:g} s per level; servers: {args.threads} torch thread(s) each (loaded in turn, never "
              "together), queue_size 64",
              f"- note: {args.note}" if args.note else "", "",
              f"Offline, generate.py's batches (32) over the same abstracts: **{offline_rate:.2f} titles/s** "
              f"(peak RSS of that process {offline_rss:.0f} MiB).", "",
              "| clients | batched titles/s | p50 s | p95 s | abstracts per decode | unbatched titles/s | p50 s | p95 s "
              "| batched / unbatched | 503s (b / u) | lost (b / u) | peak RSS MiB (b / u) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for batched, unbatched in results:
        lines.append(_row(batched, unbatched))
    lines += ["", "Where the time went (decode worker, per title answered; idle: share of the level it waited for "
                  "requests):", ""]
    for batched, unbatched in results:
        for name, r in (("batched", batched), ("unbatched", unbatched)):
            lines.append(f"- {r.clients} client(s), {name}: {where_time_went(r)}")
    differing = sum(t != offline_titles[i] for b, _ in results for i, t in b.titles.items())
    lines += ["", f"Served best titles (batched server, last answer per abstract and level) that differ from the "
                  f"offline decode's: {differing}.",
              "" if rss_reset else "Peak RSS could not be reset per level: the values are each server's peak so far."]
    return "\n".join(lines) + "\n"


def _row(b: LevelResult, u: LevelResult) -> str:
    rate = lambda r: r.answered / r.seconds  # noqa: E731
    per_decode = b.answered / b.batches if b.batches else float("nan")
    return (f"| {b.clients} | {rate(b):.2f} | {b.percentile(0.5):.2f} | {b.percentile(0.95):.2f} | {per_decode:.1f} "
            f"| {rate(u):.2f} | {u.percentile(0.5):.2f} | {u.percentile(0.95):.2f} | {rate(b) / rate(u):.2f}x "
            f"| {b.statuses.get(503, 0)} / {u.statuses.get(503, 0)} | {b.lost} / {u.lost} "
            f"| {b.peak_rss_mib:.0f} / {u.peak_rss_mib:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--abstracts", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of each server's decode worker and of the offline decode (default: the "
                             "machine's cores; the servers are loaded in turn)")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(REPO_ROOT / "outputs" / "benchmarks" / "bench_serve.md"))
    args = parser.parse_args(argv)
    args.checkpoint_name = "/".join(Path(args.checkpoint).resolve().parts[-2:])  # no machine paths in the report
    abstracts = dev_abstracts(args.abstracts)
    offline = offline_decode(args.checkpoint, abstracts, args.threads)
    print(f"offline: {offline[0]:.2f} titles/s", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as logs:
        servers = [Server(args.checkpoint, args.max_batch, Path(logs), args.threads),
                   Server(args.checkpoint, 1, Path(logs), args.threads)]
        try:
            results, rss_reset = _load_both(servers, abstracts, args)
        finally:
            for server in servers:
                server.stop()
    text = report(args, offline, results, rss_reset)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    lost = sum(b.lost + u.lost for b, u in results)
    return 1 if lost else 0


def _load_both(servers: list[Server], abstracts: list[str], args) -> tuple[list, bool]:
    for server in servers:
        server.wait_until_serving()
        httpx.post(server.url + "v1/titles", json={"abstracts": abstracts[:1]}, timeout=START_TIMEOUT_S)  # warm-up
    rss_reset = all(server.reset_peak_rss() for server in servers)
    results = []
    for level, clients in enumerate(args.clients):
        order = servers if level % 2 == 0 else servers[::-1]  # alternate which goes first
        measured = {id(s): measure(s, abstracts, clients, args.seconds) for s in order}
        results.append((measured[id(servers[0])], measured[id(servers[1])]))
    return results, rss_reset


if __name__ == "__main__":
    sys.exit(main())
