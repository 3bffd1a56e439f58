"""Seconds per training step (forward + backward + clip + AdamW step) for each regularizer.

    python scripts/bench_train.py [--steps 8] [--warmup 2] [--batch-size B] [--examples N]
                                  [--regularizers baseline,random_replace,grad_penalty,rdrop]
                                  [--out outputs/benchmarks/bench_train.md] [--no-memory] [--fast-dropout-peer]
                                  [hydra overrides, e.g. model.hidden_size=64 trainer.device=cuda]

The configuration is conf/train.yaml composed with the given overrides (the default model
unless overridden). The first N training examples (default: enough for (warmup + steps)
distinct batches) build the tokenizer and the batches, exactly as train.py would (data.dir,
data.max_source_len, data.max_target_len, data.vocab_min_count; model.pretrained loads its own
tokenizer).

Every regularizer runs on the same batches, round-robin (step i: every regularizer once, in an
order rotated by i), so machine noise hits all of them alike; one model and one AdamW optimizer
are shared (the weights' values do not change the cost). Before each step the model's dropout is
set to what the regularizer trains with (`model_dropout`, else the model's own): this matters
for cost because on CPU PyTorch's attention picks a different kernel when dropout is 0.
With rdrop, two peers are timed too: 'baseline_2B_rows' (plain CE over the doubled batch) and
'rdrop_passes_twice' (regularizer.passes=twice: two forwards over B rows instead of one over 2B, the
same loss), and the ratio 'rdrop_passes_twice / rdrop' on which regularizer.passes=auto's choice rests.
The table gives the median over the timed steps and the ratio to the baseline's median.
A semi-supervised regularizer (regularizers/semi_supervised.py) also gets, as in training, batch["unlabeled"]:
round(unlabeled_ratio x B) abstracts of the next batch's pairs, titles dropped (its pseudo-titles are
decoded in the timed step; give model.pretrained so that they end as a trained model's do).
Dropout follows trainer.fast_dropout; with --fast-dropout-peer every regularizer is also timed with
the other dropout (entries '<name>+fast_dropout', torch's dropout for the plain names), same batches,
same round-robin; a '+fast_dropout' entry's ratio is to 'baseline+fast_dropout', and the table adds
each regularizer's torch/fast time ratio.

Peak memory: on CUDA, torch.cuda.max_memory_allocated around each regularizer's steps. On CPU
the resident set size is process-wide and only grows, so each regularizer gets a fresh spawned
child process that builds the same model and runs 2 steps on the first batch; the table gives
its peak RSS and how much the 2 steps raised the peak above the set-up (model, data, imports).
"""
from __future__ import annotations

import argparse
import json
import os
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seq2seq_rdrop.atomic_files import write_text_atomically
from seq2seq_rdrop.data import read_examples, resolve_data_dir
from seq2seq_rdrop.distributed import pick_device
from seq2seq_rdrop.fast_dropout import use_fast_dropout
from seq2seq_rdrop.machine import machine_lines
from seq2seq_rdrop.memory import keep_freed_memory
from seq2seq_rdrop.models import build_model
from seq2seq_rdrop.regularizer_names import ARTICLE_FOUR, conf_names
from seq2seq_rdrop.regularizers import Regularizer
from seq2seq_rdrop.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from seq2seq_rdrop.model_setup import encode_pairs

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
# cost relative to the baseline that each regularizer is expected to stay within; R-Drop's is the two-pass
# floor (two forward/backward passes, one optimizer step), whichever execution (regularizer.passes) runs it
TARGETS = {"rdrop": 2.0, "rdrop_passes_twice": 2.0, "grad_penalty": 2.5, "random_replace": 1.05}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per regularizer (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per regularizer first (default 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: trainer.batch_size")
    parser.add_argument("--examples", type=int, default=None,
                        help="first N training examples to read (default: (warmup + steps) x batch size)")
    parser.add_argument("--regularizers", default=",".join(ARTICLE_FOUR),
                        help="comma-separated conf/regularizer names; baseline is always included")
    parser.add_argument("--out", default="outputs/benchmarks/bench_train.md", help="markdown report to write")
    parser.add_argument("--json", default=None, help="also write seconds per step and ratios as JSON here")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--fast-dropout-peer", action="store_true",
                        help="time every regularizer twice, with torch's dropout and with trainer.fast_dropout")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for conf/train.yaml, e.g. model.hidden_size=64")
    args = parser.parse_intermixed_args(argv)  # overrides may sit between options
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    names = [n.strip() for n in args.regularizers.split(",") if n.strip()]
    if "baseline" not in names:
        names.insert(0, "baseline")
    unknown = [n for n in names if n not in conf_names()]
    if unknown:
        parser.error(f"no conf/regularizer/{unknown[0]}.yaml")
    args.regularizers = names
    dropped = [o for o in args.overrides if o.split("=", 1)[0].lstrip("+~") == "regularizer"]
    if dropped:
        print(f"note: ignoring {' '.join(dropped)}: every regularizer in --regularizers is measured", file=sys.stderr)
    args.overrides = [o for o in args.overrides if o not in dropped]
    return args


def compose_cfg(overrides: list[str], regularizer: str | None = None):
    extra = [f"regularizer={regularizer}"] if regularizer else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, *extra])


def entry_cfg(overrides: list[str], name: str):
    """The configuration of a timed entry: a conf/regularizer name, or a VARIANTS name with its overrides."""
    base, extra = VARIANTS.get(name, (name, []))
    return compose_cfg([*overrides, *extra], base)


def make_tokenizer(cfg, train_examples, tmp_dir: Path):
    """Like training.train: the pretrained checkpoint's tokenizer, or one built from the train texts.
    Returns (tokenizer, a path a child process can load it from)."""
    if cfg.model.pretrained:
        return load_tokenizer(cfg.model.pretrained), str(cfg.model.pretrained)
    texts = [t for e in train_examples for t in (e.title, e.abstract)]
    tokenizer = build_tokenizer(texts, tmp_dir, min_count=cfg.data.vocab_min_count)
    save_tokenizer(tokenizer, tmp_dir)  # the config files AutoTokenizer needs in the child processes
    return tokenizer, str(tmp_dir)


def load_batches(cfg, model, tokenizer, train_examples, batch_size: int, n_batches: int):
    encoded = encode_pairs(model, tokenizer, train_examples, cfg.data.max_source_len, cfg.data.max_target_len)
    batches = [model.collate(encoded[i:i + batch_size]) for i in range(0, len(encoded), batch_size)]
    batches = [b for b in batches if b["src_ids"].size(0) == batch_size] or batches[:1]
    return [batches[i % len(batches)] for i in range(n_batches)]  # cycles when data is short


def unlabeled_batch(model, batches: list[dict], i: int, rows: int) -> dict:
    """batch["unlabeled"] of step i for a semi-supervised regularizer: the `src_ids` of `rows` abstracts from
    the batches after batch i (their titles left out), as training's UnlabeledStream gives other abstracts."""
    sources = []
    for later in range(i + 1, i + 1 + len(batches)):
        sources += [row[row != model.pad_id].tolist() for row in batches[later % len(batches)]["src_ids"]]
        if len(sources) >= rows:
            break
    return model.collate([(src, None, None) for src in sources[:rows]])


def train_step(model, regularizer, optimizer, batch, max_grad_norm: float) -> float:
    loss, _parts = regularizer(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach().item()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _maxrss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _proc_status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_mib("VmHWM") is not None


def _memory_child(overrides, name, tokenizer_path, batch, num_threads, seed, queue) -> None:
    """Spawned child: the same model, one regularizer, 2 steps on `batch`; put peak RSS into queue."""
    keep_freed_memory()
    try:
        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        cfg = entry_cfg(overrides, name)
        tokenizer = load_tokenizer(tokenizer_path)
        model = use_fast_dropout(build_model(cfg.model, tokenizer), bool(cfg.trainer.fast_dropout))
        regularizer = instantiate(cfg.regularizer)
        regularizer.apply_dropout(model)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.trainer.lr, weight_decay=cfg.trainer.weight_decay)
        # Peak RSS during the steps alone when the kernel lets us reset it (VmHWM), else the rise of
        # the process-lifetime peak (0 when the set-up, e.g. the imports, peaked higher)
        resettable = _reset_peak_rss()
        before = _proc_status_mib("VmRSS") if resettable else _maxrss_mib()
        for _ in range(2):
            train_step(model, regularizer, optimizer, batch, cfg.trainer.max_grad_norm)
        after = _proc_status_mib("VmHWM") if resettable else _maxrss_mib()
        queue.put({"peak": max(after, _maxrss_mib()), "steps_peak": after, "delta": after - before,
                   "how": "VmHWM reset" if resettable else "ru_maxrss"})
    except BaseException as e:  # report, never hang the parent
        queue.put({"error": f"{type(e).__name__}: {e}"})


def cpu_peak_memory(overrides, names, tokenizer_path, batch, num_threads, seed) -> dict[str, dict]:
    spawn = mp.get_context("spawn")
    out = {}
    for name in names:
        queue = spawn.Queue()
        proc = spawn.Process(target=_memory_child, args=(overrides, name, tokenizer_path, batch, num_threads, seed, queue))
        proc.start()
        try:
            out[name] = queue.get(timeout=1800)
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"no result from the child process ({type(e).__name__})"}
        proc.join()
    return out


DOUBLED = "baseline_2B_rows"
TWICE = "rdrop_passes_twice"
# entries timed besides the YAMLs: name -> (conf/regularizer name, overrides). R-Drop's two executions of
# the same loss (issue 17): "rdrop" runs the YAML's passes (doubled: one forward over 2B rows), TWICE two
# forwards over B rows
VARIANTS = {TWICE: ("rdrop", ["regularizer.passes=twice"])}
FAST = "+fast_dropout"
COLUMNS = ["regularizer", "median s/step", "ratio to baseline", "target", "meets target",
           "peak MiB", "step +MiB", "min s", "max s"]


class DoubledBatch(Regularizer):
    """Peer for R-Drop: plain CE over the batch duplicated (2B rows, R-Drop's dropout)."""

    def __call__(self, model, batch):
        return self.base_loss(model, {k: torch.cat([v, v]) for k, v in batch.items()})


@dataclass
class Entry:
    """One timed row of the table: a regularizer, the dropout implementation it runs with, and how many
    unlabelled abstracts each of its steps carries (0 unless it is semi-supervised)."""
    regularizer: Regularizer
    fast_dropout: bool
    unlabeled_rows: int


@dataclass
class Bench:
    """What every timed step shares: one model and one AdamW optimizer (the weights' values do not change
    the cost), the device, and the model's own dropout, restored before each regularizer sets its own."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    own_dropout: tuple[float, float]
    max_grad_norm: float


def main(argv=None) -> int:
    keep_freed_memory()  # as train.py does
    args = parse_args(argv)
    cfg = compose_cfg(args.overrides)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = pick_device(cfg.trainer.device, option="trainer.device")
    batch_size = args.batch_size or int(cfg.trainer.batch_size)
    n_steps = args.warmup + args.steps
    train_path = resolve_data_dir(cfg.data.dir) / cfg.data.train_file
    n_examples = args.examples or n_steps * batch_size
    train_examples = read_examples(train_path, skip_bad_lines=cfg.data.skip_bad_lines)[:n_examples]

    # the tokenizer's files live in tmp until the memory children, which load them, are done
    with tempfile.TemporaryDirectory(prefix="bench_tok_") as tmp:
        tokenizer, tokenizer_path = make_tokenizer(cfg, train_examples, Path(tmp))
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, tokenizer)
        own_dropout = model.dropout_rates()  # (hidden, attention)
        regularizers = build_regularizers(args.overrides, args.regularizers)
        batches = load_batches(cfg, model, tokenizer, train_examples, batch_size, n_steps)
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.trainer.lr, weight_decay=cfg.trainer.weight_decay)
        bench = Bench(model, optimizer, device, own_dropout, cfg.trainer.max_grad_norm)
        header = [*machine_lines(device), model_line(cfg, model, own_dropout),
                  data_line(train_path, len(train_examples), batch_size, batches), steps_line(args)]
        print("\n".join(header), flush=True)
        entries = timed_entries(regularizers, bool(cfg.trainer.fast_dropout), args.fast_dropout_peer, batch_size)
        times, cuda_peak = time_round_robin(bench, entries, batches, args.warmup)
        memory, memory_note = peak_memory(args, device, entries, cuda_peak, tokenizer_path, batches[0], cfg.seed)

    table = markdown_table(result_rows(times, memory))
    print("\n" + "\n".join(table))
    print(memory_note)
    write_report(Path(args.out), header, memory_note, table)
    if args.json:
        write_json(Path(args.json), list(times), times, header, argv)
    return 0


def build_regularizers(overrides: list[str], names: list[str]) -> dict[str, Regularizer]:
    """The named conf/regularizer entries, then R-Drop's peers when rdrop is among them: the doubled batch
    and the VARIANTS of a named regularizer."""
    regularizers = {name: instantiate(compose_cfg(overrides, name).regularizer) for name in names}
    if "rdrop" in regularizers:
        # the physical reference for R-Drop: the same one forward over 2B rows, without the KL term
        rdrop = regularizers["rdrop"]
        regularizers[DOUBLED] = DoubledBatch(model_dropout=rdrop.model_dropout,
                                             model_attention_dropout=rdrop.model_attention_dropout)
    for variant, (base, _extra) in VARIANTS.items():
        if base in regularizers:
            regularizers[variant] = instantiate(entry_cfg(overrides, variant).regularizer)
    return regularizers


def model_line(cfg, model, own_dropout: tuple[float, float]) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    return (f"model: {cfg.model.family}, {n_params / 1e6:.2f}M parameters, vocabulary {model.vocab_size}, "
            f"dropout {own_dropout[0]:g}, attention {own_dropout[1]:g} (the regularizer's where set)")


def data_line(train_path: Path, n_examples: int, batch_size: int, batches: list[dict]) -> str:
    shapes = [f"{b['src_ids'].shape[1]}+{b['tgt_in'].shape[1]}" for b in batches]
    return (f"data: {os.path.relpath(train_path)}, first {n_examples} examples, batch size {batch_size}, "
            f"{len(batches)} batches (abstract+title widths {', '.join(shapes)})")


def steps_line(args) -> str:
    return (f"steps: {args.warmup} warm-up + {args.steps} timed per regularizer, round-robin; "
            f"overrides: {' '.join(args.overrides) or '(none)'}")


def timed_entries(regularizers: dict[str, Regularizer], fast_dropout: bool, fast_dropout_peer: bool,
                  batch_size: int) -> dict[str, Entry]:
    """One entry per regularizer with the config's dropout or, with --fast-dropout-peer, two: torch's dropout
    under the plain name, then trainer.fast_dropout's as '<name>+fast_dropout' (the same regularizer object)."""
    dropouts = [("", False), (FAST, True)] if fast_dropout_peer else [("", fast_dropout)]
    return {name + suffix: Entry(reg, fast, round(reg.unlabeled_per_labeled() * batch_size))
            for suffix, fast in dropouts for name, reg in regularizers.items()}


def time_round_robin(bench: Bench, entries: dict[str, Entry], batches: list[dict], warmup: int):
    """Steps every entry once per batch, in an order rotated by the step so that machine noise hits all of
    them alike, and prints each step's times. Returns each entry's seconds per timed (after the warm-up)
    step and its peak CUDA MiB over all steps (0 on CPU)."""
    names = list(entries)
    times: dict[str, list[float]] = {n: [] for n in names}
    cuda_peak: dict[str, float] = {n: 0.0 for n in names}
    for i in range(len(batches)):
        inputs = step_inputs(bench, entries, batches, i)
        last: dict[str, float] = {}
        rot = i % len(names)
        for name in names[rot:] + names[:rot]:
            last[name], loss, peak = time_step(bench, entries[name], inputs[name])
            if not torch.isfinite(torch.tensor(loss)):
                raise FloatingPointError(f"{name}: loss {loss} at step {i + 1}")
            cuda_peak[name] = max(cuda_peak[name], peak)
            if i >= warmup:
                times[name].append(last[name])
        print(f"step {i + 1}/{len(batches)}" + (" (warm-up)" if i < warmup else "") + ": "
              + ", ".join(f"{n} {last[n]:.3f}s" for n in names), flush=True)
    return times, cuda_peak


def step_inputs(bench: Bench, entries: dict[str, Entry], batches: list[dict], i: int) -> dict[str, dict]:
    """Each entry's batch for step i, on the device: batch i, plus batch["unlabeled"] for a semi-supervised
    entry (built once per distinct row count, so entries of the same count step on the same abstracts)."""
    labelled = {k: v.to(bench.device) for k, v in batches[i].items()}
    unlabeled = {rows: {k: v.to(bench.device) for k, v in unlabeled_batch(bench.model, batches, i, rows).items()}
                 for rows in {e.unlabeled_rows for e in entries.values()} if rows}
    return {name: {**labelled, "unlabeled": unlabeled[e.unlabeled_rows]} if e.unlabeled_rows else labelled
            for name, e in entries.items()}


def time_step(bench: Bench, entry: Entry, batch: dict) -> tuple[float, float, float]:
    """One train_step with the entry's dropout: (seconds, loss, peak CUDA MiB during it, 0 on CPU)."""
    # the dropout the regularizer trains with: on CPU PyTorch's attention picks another kernel when it is 0
    use_fast_dropout(bench.model, entry.fast_dropout)
    bench.model.set_dropout(*bench.own_dropout)
    entry.regularizer.apply_dropout(bench.model)
    cuda = bench.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(bench.device)
    _sync(bench.device)  # time this step's kernels, not the ones queued before it
    t0 = time.perf_counter()
    loss = train_step(bench.model, entry.regularizer, bench.optimizer, batch, bench.max_grad_norm)
    _sync(bench.device)
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(bench.device) / 2**20 if cuda else 0.0
    return elapsed, loss, peak


def peak_memory(args, device: torch.device, entries: dict[str, Entry], cuda_peak: dict[str, float],
                tokenizer_path: str, first_batch: dict, seed: int) -> tuple[dict[str, dict], str]:
    """Each measured entry's memory ({"peak": MiB, ...} or {"error": ...}) and the report's line on how."""
    if args.no_memory:
        return {}, "peak memory: not measured (--no-memory)"
    if device.type == "cuda":
        return {n: {"peak": cuda_peak[n]} for n in entries}, (
            "peak MiB: torch.cuda.max_memory_allocated during the regularizer's steps "
            "(includes the shared model, gradients and AdamW state)")
    print("measuring peak memory: one spawned process per regularizer, 2 steps each ...", flush=True)
    # a child composes its regularizer from conf (there is no YAML for DOUBLED), runs the config's dropout
    # (one measurement per regularizer, not per dropout) and steps on labelled pairs alone (not the
    # semi-supervised entries)
    measured = [n for n, e in entries.items() if n != DOUBLED and not n.endswith(FAST) and not e.unlabeled_rows]
    memory = cpu_peak_memory(args.overrides, measured, tokenizer_path, first_batch, torch.get_num_threads(), seed)
    how = next((m["how"] for m in memory.values() if "how" in m), "ru_maxrss")
    return memory, ("peak MiB: peak RSS of a fresh spawned process (imports, model, data, 2 steps on "
                    "batch 1); step +MiB: " + (
                        "peak RSS during the 2 steps minus the RSS before them (VmHWM reset by "
                        "/proc/self/clear_refs)" if how == "VmHWM reset" else
                        "how much the 2 steps raised the process's peak RSS above the set-up's"))


def median_ratio(times: dict[str, list[float]], name: str, reference: str) -> float:
    return statistics.median(times[name]) / statistics.median(times[reference])


def ratio_row(label: str, ratio: str) -> list[str]:
    """A table row that compares two entries: only the ratio column is filled."""
    return [label, "-", ratio, "-", "-", "-", "-", "-", "-"]


def result_rows(times: dict[str, list[float]], memory: dict[str, dict]) -> list[list[str]]:
    """One row per timed entry, then the ratios between peers timed on the same batches in the same run."""
    rows = [entry_row(name, times, memory.get(name, {})) for name in times]
    for suffix in ("", FAST):  # R-Drop against its peers on the same dropout
        rdrop = "rdrop" + suffix
        doubled, twice = DOUBLED + suffix, TWICE + suffix
        if doubled in times and rdrop in times:
            rows.append(ratio_row(f"{rdrop} / {doubled}", f"{median_ratio(times, rdrop, doubled):.2f}x"))
        if twice in times and rdrop in times:  # < 1: two B-row passes are the cheaper
            rows.append(ratio_row(f"{twice} / {rdrop}", f"{median_ratio(times, twice, rdrop):.2f}x"))
    for name in times:
        if name + FAST in times:  # the same regularizer, same batches, same run: what fast_dropout saves
            speedup = median_ratio(times, name, name + FAST)
            rows.append(ratio_row(f"{name}: torch / fast dropout", f"{speedup:.2f}x faster"))
    return rows


def entry_row(name: str, times: dict[str, list[float]], mem: dict) -> list[str]:
    """The entry's median, its ratio to the baseline on the same dropout, its target, memory, min and max."""
    ratio = median_ratio(times, name, "baseline" + (FAST if name.endswith(FAST) else ""))
    target = TARGETS.get(name.removesuffix(FAST))
    if "error" in mem:
        peak = step_mem = f"error: {mem['error']}"
    else:
        peak = f"{mem['peak']:.0f}" if "peak" in mem else "-"
        step_mem = f"{mem['delta']:.0f}" if "delta" in mem else "-"
    return [name, f"{statistics.median(times[name]):.4f}", f"{ratio:.2f}x", f"<= {target:.2f}x" if target else "-",
            ("yes" if ratio <= target else "no") if target else "-", peak, step_mem,
            f"{min(times[name]):.4f}", f"{max(times[name]):.4f}"]


def markdown_table(rows: list[list[str]]) -> list[str]:
    return [f"| {' | '.join(COLUMNS)} |", f"|{'|'.join('---' for _ in COLUMNS)}|",
            *[f"| {' | '.join(r)} |" for r in rows]]


def write_report(path: Path, header: list[str], memory_note: str, table: list[str]) -> None:
    report = ["# Training step cost per regularizer", "", *[f"- {h}" for h in header], f"- {memory_note}", "",
              *table, ""]
    write_text_atomically(path, "\n".join(report) + "\n")
    print(f"wrote {path}")


def write_json(path: Path, names: list[str], times: dict[str, list[float]], header: list[str], argv) -> None:
    """Median seconds per step and the ratio to the baseline's, for reports that convert steps to time
    (scripts/compare.py's equal-time table)."""
    medians = {n: statistics.median(times[n]) for n in names}
    command = "python scripts/bench_train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = next((line.removeprefix("machine: ") for line in header if line.startswith("machine:")), "")
    write_text_atomically(path, json.dumps({
        "seconds_per_step": {n: round(m, 4) for n, m in medians.items()},
        "ratio_to_baseline": {n: round(m / medians["baseline"], 3) for n, m in medians.items()},
        "machine": machine, "command": command, "header": header}, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
