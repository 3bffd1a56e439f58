"""What the data path costs as the data grows: train.py before its first step, and pretrain.py's
pseudo-pair construction, on synthetic CSL-shaped pairs at 2.7k, 27k and 270k pairs.

    python scripts/bench_data.py [--sizes 2700,27000,270000] [--out outputs/benchmarks/bench_data.md]
                                 [--json PATH] [--no-reference] [--keep DIR] [hydra overrides for conf/train.yaml]

Data: generated here, never committed. Per size N: train.tsv with N pairs, dev.tsv with N/10, and
titles_only.txt with 3N titles (CSL's ratio: 8,000 title-only lines for 2,699 pairs). Lengths follow
the percentiles of the real CSL pairs (title mean 19 characters, abstract mean 243, longest 1,215),
characters a Zipf draw over 5,000 CJK characters plus ~8% Latin words and digits, sentences ended
by "。", and ~90% of a title's characters taken from its abstract (as in CSL).

Each measurement runs in a fresh child process (`--child MODE`), so the peak RSS is per size and mode:
  train (cold cache)   train.py's steps up to the first batch: read train/dev (load_splits), build the
                       character vocabulary and the model (build_or_resume_model, prepare_model), encode
                       the training split (encode_training_split, which writes the cache), the step plan
                       and the first batch (batch_schedule, collate)
  train (warm cache)   the same again: the encoding is read from the cache written by the cold run
  train, lists (ref.)  the same with the pre-cache encoding, model_setup.encode_pairs: a list of Python
                       int lists per pair (what runs held before); with --no-reference it is skipped
  pretrain             pretraining.prepare: read train/dev/titles, build the title-denoising and
                       gap-sentence pairs, write pretrain_data/train.tsv and heldout.tsv
The table gives wall and CPU seconds per phase (imports apart: constant), peak RSS, and the growth
factor per 10x pairs (10x = linear) of the data-path wall seconds, of its CPU seconds, and of the peak
RSS above the after-import baseline. CPU seconds are the child's own user + system time
(time.process_time() around each phase): they do not count the time the child waited for a core, so
linearity is judged on them; wall seconds swing with whatever else the machine runs (CPU seconds still
rise somewhat when other jobs compete for caches and memory bandwidth).
"""
from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seq2seq_rdrop.atomic_files import write_text_atomically

T_START = time.perf_counter()  # before the heavy imports, which the child reports as a phase
C_START = time.process_time()  # the same in this process's CPU seconds (user + system)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
MODES = ("train_cold", "train_warm", "train_lists", "pretrain")
MODE_NAMES = {"train_cold": "train (cold cache)", "train_warm": "train (warm cache)",
              "train_lists": "train, lists (ref.)", "pretrain": "pretrain pseudo pairs"}
TARGET_PEAK_MIB = 4096
LINEAR_SLACK = 12.0  # growth per 10x counted as linear: 10x plus 20% for timing noise

# character-length quantiles of the real CSL pairs (train + dev, 3,192 pairs): (percentile, length)
ABSTRACT_QUANTILES = [(0, 27), (1, 54), (5, 89), (10, 116), (25, 172), (50, 234), (75, 302), (90, 369), (95, 424),
                      (99, 555), (100, 1215)]
TITLE_QUANTILES = [(0, 3), (1, 8), (5, 11), (10, 13), (25, 16), (50, 19), (75, 22), (90, 26), (95, 29), (99, 37),
                   (100, 51)]
LATIN = ["lstm", "cnn", "bert", "svm", "gps", "rfid", "dna", "pcr", "iot", "5g", "2019", "3.5", "k-means", "ofdm",
         "hadoop", "spark", "mimo", "gis", "sar", "uav"]


# --------------------------------------------------------------------------------------- synthetic data


def _quantile_draw(rng: random.Random, quantiles) -> int:
    """A length from the piecewise-linear inverse CDF through the measured percentiles."""
    u = rng.random() * 100
    i = max(1, bisect.bisect_left([q for q, _ in quantiles], u))
    (q0, v0), (q1, v1) = quantiles[i - 1], quantiles[i]
    return max(1, round(v0 + (v1 - v0) * (u - q0) / (q1 - q0)))


class Synth:
    def __init__(self, seed: int = 0, n_chars: int = 5000):
        self.rng = random.Random(seed)
        self.chars = [chr(0x4E00 + i) for i in range(n_chars)]
        self.cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(n_chars)))  # Zipf, exponent 1

    def text(self, n: int) -> str:
        rng, out, length = self.rng, [], 0
        while length < n:
            if rng.random() < 0.03:
                piece = rng.choice(LATIN)
            else:
                piece = "".join(rng.choices(self.chars, cum_weights=self.cum, k=rng.randint(4, 12)))
            out.append(piece)
            length += len(piece)
            if rng.random() < 0.15:
                out.append("，" if rng.random() < 0.75 else "。")
                length += 1
        return "".join(out)[:n]

    def abstract(self) -> str:
        return self.text(_quantile_draw(self.rng, ABSTRACT_QUANTILES) - 1) + "。"

    def title(self, abstract: str | None = None) -> str:
        n = _quantile_draw(self.rng, TITLE_QUANTILES)
        if abstract is None:
            return self.text(n)
        parts, length = [], 0  # spans of the abstract (~90% of the characters), a few fresh ones
        while length < n:
            if self.rng.random() < 0.9:
                span = self.rng.randint(2, 6)
                start = self.rng.randrange(0, max(1, len(abstract) - span))
                piece = abstract[start:start + span].replace("。", "")
            else:
                piece = self.text(self.rng.randint(1, 3))
            parts.append(piece)
            length += len(piece)
        return "".join(parts)[:n] or "标题"


def write_dataset(root: Path, n: int, seed: int = 0) -> dict:
    """train.tsv (n pairs), dev.tsv (n/10), titles_only.txt (3n); returns sizes in bytes."""
    synth = Synth(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.tsv", n), ("dev.tsv", max(1, n // 10))):
        with open(root / name, "w", encoding="utf-8") as f:
            for _ in range(count):
                abstract = synth.abstract()
                f.write(f"{synth.title(abstract)}\t{abstract}\n")
    with open(root / "titles_only.txt", "w", encoding="utf-8") as f:
        for _ in range(3 * n):
            f.write(synth.title() + "\n")
    return {p.name: p.stat().st_size for p in root.iterdir()}


# ------------------------------------------------------------------------------------------- children


def _rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    current = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PhaseClock:
    """Wall and CPU seconds of named phases, each from the end of the one before (or from `start`)."""

    def __init__(self, start: tuple[float, float]):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.tick, self.cpu_tick = start

    def phase(self, name: str) -> None:
        now, cpu_now = time.perf_counter(), time.process_time()
        self.wall[name], self.cpu[name] = round(now - self.tick, 3), round(cpu_now - self.cpu_tick, 3)
        self.tick, self.cpu_tick = now, cpu_now


def child(mode: str, data_dir: Path, work_dir: Path, overrides: list[str]) -> dict:
    """One measurement; returns {phase: wall seconds}, {phase: CPU seconds}, RSS figures and counts."""
    load_start = os.getloadavg()[0]
    clock = PhaseClock((T_START, C_START))  # from before this module's imports, so that they count too
    _import_data_path()
    clock.phase("imports")
    baseline_mib = _rss_mib()[0]
    cfg = _compose(mode, data_dir, work_dir, overrides)
    if mode == "pretrain":
        counts, held = _measure_pretrain(cfg, data_dir, work_dir, clock), ()
    else:
        counts, held = _measure_train(mode, cfg, work_dir, clock)
    # `held` keeps what the run still holds (train: model, splits, first batch) alive until the end RSS is read
    return {"mode": mode, **counts, **_usage(clock, load_start, baseline_mib)}


def _import_data_path() -> None:
    """The data path's imports, timed as the 'imports' phase. Not at the top of the module: the parent, which
    generates the data and writes the report, needs none of them but torch. The measuring helpers below import
    them again, which then costs nothing (they are loaded)."""
    import torch  # noqa: F401
    from hydra import compose, initialize_config_dir  # noqa: F401
    from hydra.utils import instantiate  # noqa: F401

    from seq2seq_rdrop import pretraining, training  # noqa: F401
    from seq2seq_rdrop.distributed import init_distributed  # noqa: F401


def _compose(mode: str, data_dir: Path, work_dir: Path, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    config = "pretrain" if mode == "pretrain" else "train"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config, overrides=[f"data.dir={data_dir}", f"data.cache_dir={work_dir / 'cache'}",
                                                      *overrides])


def _measure_pretrain(cfg, data_dir: Path, work_dir: Path, clock: PhaseClock) -> dict:
    from seq2seq_rdrop import pretraining

    _, n_train, n_heldout = pretraining.prepare(cfg, data_dir, work_dir / "pretrain_data")
    clock.phase("build + write pseudo pairs")
    return {"pseudo_pairs": n_train + n_heldout}


def _measure_train(mode: str, cfg, work_dir: Path, clock: PhaseClock) -> tuple[dict, tuple]:
    """train.py's steps up to its first batch, a phase each: (the counts the report gives, what the run holds
    at its first step). The encoded split is not among the latter: the end RSS is read without it, the peak
    has it."""
    import torch
    from hydra.utils import instantiate

    from seq2seq_rdrop import model_setup, splits as splits_module, training
    from seq2seq_rdrop.distributed import init_distributed

    ctx, _ = init_distributed("cpu")
    training.set_seed(cfg.seed)
    splits = splits_module.load_splits(cfg)
    clock.phase("read")
    model, tokenizer, _ = model_setup.build_or_resume_model(cfg, work_dir / f"run_{mode}", splits.train, ctx)
    clock.phase("vocabulary + model")
    model_setup.prepare_model(model, instantiate(cfg.regularizer), cfg.trainer.fast_dropout, torch.device("cpu"))
    if mode == "train_lists":
        encoded = model_setup.encode_pairs(model, tokenizer, splits.train, cfg.data.max_source_len,
                                        cfg.data.max_target_len)
    else:
        encoded = model_setup.encode_training_split(cfg, model, tokenizer, splits)
    clock.phase("encode")
    plan = training.StepPlan.for_examples(len(encoded), cfg.trainer)
    _epoch, batch_ids = next(iter(training.batch_schedule(len(encoded), cfg.trainer.batch_size, cfg.seed, 0, plan)))
    batch = model.collate([encoded[i] for i in batch_ids])
    clock.phase("first batch")
    counts = dict(train=len(splits.train), dev_evaluated=len(splits.dev), vocab=len(tokenizer),
                  batch_shape=list(batch["src_ids"].shape))
    return counts, (ctx, splits, model, tokenizer, plan, batch)


def _usage(clock: PhaseClock, load_start: float, baseline_mib: float) -> dict:
    """The phases, their data-path totals (imports apart: constant) and the process's CPU, load and RSS."""
    current, peak = _rss_mib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return dict(phases=clock.wall, cpu_phases=clock.cpu,
                data_seconds=round(sum(v for k, v in clock.wall.items() if k != "imports"), 3),
                data_cpu_seconds=round(sum(v for k, v in clock.cpu.items() if k != "imports"), 3),
                child_cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
                load1=[round(load_start, 2), round(os.getloadavg()[0], 2)],
                baseline_mib=round(baseline_mib, 1), peak_mib=round(peak, 1), end_mib=round(current, 1))


def run_child(mode: str, data_dir: Path, work_dir: Path, overrides: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--data", str(data_dir),
           "--work", str(work_dir), *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} on {data_dir} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------------- report


def growth(values: list[float]) -> list[str]:
    return ["" if i == 0 or values[i - 1] <= 0 else f"{values[i] / values[i - 1]:.1f}x" for i in range(len(values))]


def report(results: dict, sizes: list[int], data_bytes: dict, header: list[str], modes: list[str]) -> str:
    largest = sizes[-1]
    lines = [*_introduction(header), *_table(results, sizes, data_bytes, modes),
             "", "Targets at the largest size:", *_peak_verdicts(results, largest, modes),
             *_growth_verdicts(results, sizes, modes), *_cache_verdict(results, largest, modes),
             "", _model_line(results, sizes, modes)]
    return "\n".join(lines) + "\n"


def _introduction(header: list[str]) -> list[str]:
    return ["# Data-path cost against data size (`scripts/bench_data.py`)", "", *[f"- {h}" for h in header], "",
            "Synthetic CSL-shaped pairs (generated by the benchmark, not committed): train N, dev N/10, "
            "titles_only 3N. One fresh child process per mode and size; imports apart. Phases: wall / CPU "
            "seconds, CPU = the child's user + system time (`time.process_time()`), which leaves out the time "
            "it waited for a core while other jobs ran (it still rises somewhat when they compete for caches and "
            "memory bandwidth). Growth = value at this size / value at the 10x "
            "smaller size (10x = linear). Peak RSS growth is of the peak above the after-import baseline. "
            "Load: the 1-minute load average when the child started.", ""]


def _table(results: dict, sizes: list[int], data_bytes: dict, modes: list[str]) -> list[str]:
    lines = ["| mode | pairs | files MB | load | imports s | phases wall / CPU s | data-path wall s | growth | "
             "data-path CPU s | growth | peak RSS MiB | above baseline MiB | growth |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode in modes:
        rows = [results[(mode, n)] for n in sizes]
        seconds = [r["data_seconds"] for r in rows]
        cpu = [r["data_cpu_seconds"] for r in rows]
        above = [r["peak_mib"] - r["baseline_mib"] for r in rows]
        for n, r, g_s, g_c, a, g_m in zip(sizes, rows, growth(seconds), growth(cpu), above, growth(above)):
            phases = ", ".join(f"{k} {v:.2f} / {r['cpu_phases'][k]:.2f}" for k, v in r["phases"].items()
                               if k != "imports")
            lines.append(f"| {MODE_NAMES[mode]} | {n:,} | {data_bytes[n] / 1e6:.0f} | {r['load1'][0]:.1f} | "
                         f"{r['phases']['imports']:.1f} | {phases} | {r['data_seconds']:.2f} | {g_s} | "
                         f"{r['data_cpu_seconds']:.2f} | {g_c} | {r['peak_mib']:.0f} | {a:.0f} | {g_m} |")
    return lines


def _peak_verdicts(results: dict, largest: int, modes: list[str]) -> list[str]:
    lines = []
    for mode in modes:
        peak = results[(mode, largest)]["peak_mib"]
        verdict = "met" if peak < TARGET_PEAK_MIB else "**not met**"
        lines.append(f"- {MODE_NAMES[mode]}: peak RSS {peak:.0f} MiB at {largest:,} pairs "
                     f"(< {TARGET_PEAK_MIB} MiB: {verdict})")
    return lines


def _growth_verdicts(results: dict, sizes: list[int], modes: list[str]) -> list[str]:
    """Linearity is judged on CPU seconds: wall seconds also count the time a child waited for a core."""
    lines = [f"- growth per 10x, judged on CPU seconds (wall seconds beside them, for reference only: they "
             f"also count waiting for a core); up to {LINEAR_SLACK:.0f}x counts as linear (timing noise):"]
    for mode in modes:
        cpu = [results[(mode, n)]["data_cpu_seconds"] for n in sizes]
        wall = [results[(mode, n)]["data_seconds"] for n in sizes]
        worst = max((b / a for a, b in zip(cpu, cpu[1:]) if a > 0), default=0.0)
        worst_wall = max((b / a for a, b in zip(wall, wall[1:]) if a > 0), default=0.0)
        lines.append(f"  - {MODE_NAMES[mode]}: largest data-path CPU growth per 10x {worst:.1f}x "
                     f"({'linear or better' if worst <= LINEAR_SLACK else '**faster than linear**'}; "
                     f"wall {worst_wall:.1f}x)")
    return lines


def _cache_verdict(results: dict, largest: int, modes: list[str]) -> list[str]:
    """What the encoding cache saves: the cold run's encoding against the warm run's read-back (both modes run)."""
    if not ("train_cold" in modes and "train_warm" in modes):
        return []
    cold = results[("train_cold", largest)]
    warm = results[("train_warm", largest)]
    return [f"- cache: encoding {cold['phases']['encode']:.1f}s wall / {cold['cpu_phases']['encode']:.1f}s "
            f"CPU cold, {warm['phases']['encode']:.1f}s / {warm['cpu_phases']['encode']:.1f}s read back "
            f"warm at {largest:,} pairs "
            f"({cold['cpu_phases']['encode'] / max(warm['cpu_phases']['encode'], 1e-3):.0f}x in CPU)"]


def _model_line(results: dict, sizes: list[int], modes: list[str]) -> str:
    first = results[(modes[0], sizes[0])]
    return (f"Model at these settings: vocabulary {first.get('vocab', '?')} at {sizes[0]:,} pairs; "
            f"first batch {first.get('batch_shape', '?')}; dev evaluated: "
            + ", ".join(f"{results[(modes[0], n)].get('dev_evaluated', '?')} of {max(1, n // 10):,}" for n in sizes)
            + " (data.max_eval_samples).")


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.data), Path(args.work), args.overrides)))
        return 0
    # the parent's own imports, after the --child branch: a child's 'imports' phase times the data path's alone
    from seq2seq_rdrop.machine import machine_lines

    import torch

    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in MODES if not (args.no_reference and m == "train_lists")]
    results, data_bytes = measure(sizes, modes, args.keep, args.overrides)
    header = header_lines(machine_lines(torch.device("cpu")), results, args.overrides)
    write_outputs(args, report(results, sizes, data_bytes, header, modes), results)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2700,27000,270000", help="comma-separated pair counts")
    parser.add_argument("--out", default="outputs/benchmarks/bench_data.md", help="markdown report")
    parser.add_argument("--json", default=None, help="also write the raw measurements here")
    parser.add_argument("--no-reference", action="store_true", help="skip the list-encoding reference mode")
    parser.add_argument("--keep", default=None, help="generate the data into this directory and keep it")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="hydra overrides for conf/train.yaml")
    return parser.parse_intermixed_args(argv)


def measure(sizes: list[int], modes: list[str], keep: str | None, overrides: list[str]) -> tuple[dict, dict]:
    """({(mode, n): a child's measurement}, {n: bytes of generated data}). Each size's data is deleted once
    measured, so the disk holds one size at a time, unless --keep names a directory to keep it in."""
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench_data_"))
    results, data_bytes = {}, {}
    try:
        for n in sizes:
            data_bytes[n] = generate_size(root / f"n{n}" / "data", n)
            results.update(measure_size(root / f"n{n}", n, modes, overrides))
            if not keep:
                shutil.rmtree(root / f"n{n}", ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return results, data_bytes


def generate_size(data_dir: Path, n: int) -> int:
    """Write the synthetic data set of n pairs; its size in bytes."""
    started = time.perf_counter()
    n_bytes = sum(write_dataset(data_dir, n).values())
    print(f"{n:,} pairs: data generated in {time.perf_counter() - started:.0f}s ({n_bytes / 1e6:.0f} MB)", flush=True)
    return n_bytes


def measure_size(size_dir: Path, n: int, modes: list[str], overrides: list[str]) -> dict:
    """Every mode on one size's data, a child each, in MODES order and all in one work directory: the warm
    run reads the cache the cold run wrote there."""
    results = {}
    for mode in modes:
        results[(mode, n)] = r = run_child(mode, size_dir / "data", size_dir / "work", overrides)
        print(f"  {MODE_NAMES[mode]}: {r['data_seconds']:.1f}s wall / {r['data_cpu_seconds']:.1f}s CPU "
              f"data path, peak {r['peak_mib']:.0f} MiB, load {r['load1']} ({r['phases']})", flush=True)
    return results


def header_lines(machine: list[str], results: dict, overrides: list[str]) -> list[str]:
    """The report's bullets: the machine, the load the children ran under, thread settings, overrides."""
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")
                    if k in os.environ) or "none set"
    loads = [x for r in results.values() for x in r["load1"]]
    header = [*machine,
              f"1-minute load average while the children ran: {min(loads):.2f} to {max(loads):.2f} "
              f"({os.cpu_count()} cores: above {os.cpu_count()}, processes waited for a core)" if loads else "",
              f"thread settings in the environment: {env}",
              f"overrides: {' '.join(overrides) or '(none: conf/train.yaml defaults)'}"]
    return [h for h in header if h]


def write_outputs(args, text: str, results: dict) -> None:
    """The markdown report to --out (and stdout), the raw measurements to --json if given."""
    write_text_atomically(args.out, text)
    print(text)
    if args.json:
        write_text_atomically(args.json, json.dumps({f"{m}/{n}": r for (m, n), r in results.items()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
