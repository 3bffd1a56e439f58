"""Decoding speed (titles per second) of our searches, on the same weights and dev abstracts:

  * BART:  our cached beam search  vs  Hugging Face `generate` (beam search with its own cache)
  * UniLM: our cached beam search  vs  our uncached one (`use_cache=False`: the whole abstract +
           prefix recomputed at every step, the reference the cached path must equal)
  * BART, the modes HF also has (--modes): `sample` (our sampling vs HF's do_sample, each with a fixed
    seed: speed only, the random streams differ) and `diverse` (our diverse beam search vs HF's
    num_beam_groups/diversity_penalty; transformers >= 4.56 moved that mode to a Hub repo, which
    needs trust_remote_code and a download: when HF cannot run it, the row says why and times ours)

    python scripts/bench_decode.py [--n 200] [--batch-size B] [--checkpoint-unilm PATH]
                                   [--checkpoint-bart PATH] [--modes beam sample diverse]
                                   [--out outputs/benchmarks/bench_decode.md] [hydra overrides ...]

Overrides go to conf/train.yaml for both models (e.g. data.dir=..., decode.beam_size=3,
trainer.device=cuda, trainer.num_threads=2); `unilm:KEY=VALUE` or `bart:KEY=VALUE` reach one model
only (e.g. `unilm:model.num_layers=1 bart:model.encoder_layers=1`). Without a checkpoint a model is
built from scratch from conf/model/unilm_small.yaml or bart_small.yaml (random weights, seed `seed`)
with a character vocabulary from the training split, as train.py would; with one, the checkpoint
directory's own tokenizer is used.

Settings: decode.beam_size (3), decode.max_len (32 title tokens), decode.min_len, decode.length_penalty,
decode.no_repeat_ngram; Hugging Face gets the same ones (num_beams, max_new_tokens, min_new_tokens,
length_penalty, no_repeat_ngram_size, early_stopping=True, do_sample=False) plus `suppress_tokens` for
the special tokens our search never emits (padding, [CLS], the decoder start), so that both searches
solve the same problem; the table counts the titles on which they agree. Cached and uncached must
agree on every title (exit status 1 otherwise). The other modes use decode.temperature, top_k, top_p, seed
(sample) and decode.beam_groups, diversity_penalty (diverse; left at 1 and 0, i.e. plain beam search,
they become DIVERSE_DEFAULTS: one group per beam, penalty 1.0), with HF given the same;
decode.repetition_penalty reaches every mode and HF alike. Each row's speed-up is ours over its peer in
the same run.

The first N dev abstracts (cut to data.max_source_len tokens) are sorted by length and cut into
batches of --batch-size (default decode.batch_size), the same batches for both methods; each batch
is decoded by both methods in turn, in alternating order, so machine noise hits both alike. One
untimed warm-up batch (2 abstracts) per method comes first.

Random-weight models rarely emit the end token, so their titles run to decode.max_len: the worst case
for decoding cost (the longest prefixes), which the report states.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from seq2seq_rdrop.atomic_files import write_text_atomically
from seq2seq_rdrop.data import read_examples, resolve_data_dir
from seq2seq_rdrop.decoding import pick_search
from seq2seq_rdrop.decode_options import DEFAULT_DECODE
from seq2seq_rdrop.distributed import pick_device
from seq2seq_rdrop.machine import machine_lines
from seq2seq_rdrop.models import MODEL_CLASSES, build_model, load_model
from seq2seq_rdrop.tokenizer import build_tokenizer, encode_text, load_tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
FAMILIES = sorted(MODEL_CLASSES)  # run in this order; each from conf/model/FAMILY_small.yaml without a checkpoint
TARGETS = {"bart": 2.0, "unilm": 5.0}  # speed-up of our cached beam search over the other method
MODES = ("beam", "sample", "diverse")
DIVERSE_DEFAULTS = {"diversity_penalty": 1.0}  # and beam_groups = beam_size, when the config asks for neither


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="dev abstracts to decode (default 200)")
    parser.add_argument("--batch-size", type=int, default=None, help="abstracts per batch (default decode.batch_size)")
    for family in FAMILIES:
        parser.add_argument(f"--checkpoint-{family}", default=None,
                            help=f"{family} checkpoint directory (default: random init)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="beam: both models; sample, diverse: BART vs HF generate (default: all)")
    parser.add_argument("--out", default="outputs/benchmarks/bench_decode.md", help="markdown report to write")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for conf/train.yaml; unilm:/bart: for one model")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    args.common, args.per_family = [], {f: [] for f in FAMILIES}
    for override in args.overrides:
        family, sep, rest = override.partition(":")
        if sep and family in FAMILIES and "=" in rest:
            args.per_family[family].append(rest)
        elif override.split("=", 1)[0].lstrip("+~") == "model":
            flags = "/".join(f"--checkpoint-{f}" for f in FAMILIES)
            parser.error(f"{override}: the models are chosen by the script (use {flags})")
        else:
            args.common.append(override)
    return args


def compose_cfg(family: str, args):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train",
                       overrides=[f"model={family}_small", *args.common, *args.per_family[family]])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the kinds of search


def mode_options(dcfg, mode: str) -> dict:
    """Our decoding options (DEFAULT_DECODE's keys) for a benchmark mode, from the decode config; one title
    per abstract."""
    opts = {k: dcfg[k] for k in DEFAULT_DECODE if k in dcfg}
    opts.update(num_return=1, strategy="sample" if mode == "sample" else "beam")
    if mode == "beam":
        opts.update(beam_groups=1, diversity_penalty=0.0)
    elif mode == "diverse" and opts["beam_groups"] == 1 and opts["diversity_penalty"] == 0:
        opts.update(beam_groups=opts["beam_size"], **DIVERSE_DEFAULTS)
    return opts


def ours(model, src, opts: dict, use_cache=True) -> list[list[int]]:
    search, options = pick_search({**opts, "use_cache": use_cache})
    return [h[0].tokens for h in search(model, src, **options)]


def hf_generation_config(model, opts: dict):
    """HF's settings for the same search as `opts` (mode_options) on this model."""
    from transformers import GenerationConfig

    suppressed = [i for i in model.special_ids() if i != model.eos_id]
    sampling = opts["strategy"] == "sample"
    search = (dict(do_sample=True, num_beams=1, temperature=float(opts["temperature"]), top_k=int(opts["top_k"]),
                   top_p=float(opts["top_p"])) if sampling else
              dict(do_sample=False, num_beams=opts["beam_size"], early_stopping=True,
                   length_penalty=float(opts["length_penalty"])))
    if opts["beam_groups"] > 1 and not sampling:
        search.update(num_beam_groups=opts["beam_groups"], diversity_penalty=float(opts["diversity_penalty"]))
    return GenerationConfig(
        **search, max_new_tokens=opts["max_len"], min_new_tokens=opts["min_len"],
        no_repeat_ngram_size=int(opts["no_repeat_ngram"]), repetition_penalty=float(opts["repetition_penalty"]),
        num_return_sequences=1, use_cache=True,
        decoder_start_token_id=model.decoder_start_id, bos_token_id=model.bos_id, eos_token_id=model.eos_id,
        pad_token_id=model.pad_id, forced_bos_token_id=None, forced_eos_token_id=None,
        suppress_tokens=suppressed or None,
    )


@torch.no_grad()
def hf_generate(model, src, gen_cfg, seed: int | None = None) -> list[list[int]]:
    """HF generate's titles; `seed` (sampling) seeds torch's generator first, so each call is reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    out = model.hf_model.generate(input_ids=src, attention_mask=src != model.pad_id, generation_config=gen_cfg)
    titles = []
    for row in out.tolist():
        row = row[1:]  # the decoder start token
        if model.eos_id in row:
            row = row[:row.index(model.eos_id)]
        titles.append([t for t in row if t != model.pad_id])
    return titles


def mode_methods(mode: str, model, opts: dict) -> dict:
    """{method name: function of src} for one model and mode: ours first, its peer second (HF generate where
    it decodes the family, else our uncached search)."""
    name = {"beam": "cached beam search", "sample": "sampling", "diverse": "diverse beam search"}[mode]
    methods = {f"ours ({name})": lambda s: ours(model, s, opts)}
    if not model.hf_generates:
        methods["ours uncached (prefix recompute)"] = lambda s: ours(model, s, opts, use_cache=False)
    else:
        gen_cfg = hf_generation_config(model, opts)
        seed = opts["seed"] if mode == "sample" else None
        methods["HF generate"] = lambda s: hf_generate(model, s, gen_cfg, seed)
    return methods


# --------------------------------------------------------------------------- one comparison


def make_model(family: str, checkpoint: str | None, cfg, train_texts, tmp: Path, device):
    """(model, tokenizer, description)."""
    if checkpoint:
        tokenizer = load_tokenizer(checkpoint)
        model = load_model(checkpoint, tokenizer)
        if model.family != family:
            raise SystemExit(f"--checkpoint-{family} {checkpoint} holds a {model.family} model, not {family}")
        origin = f"checkpoint {checkpoint}"
    else:
        tokenizer = build_tokenizer(train_texts(), tmp / family, min_count=cfg.data.vocab_min_count)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, tokenizer)
        sizes = ", ".join(f"{k}={v}" for k, v in cfg.model.items() if k not in ("family", "pretrained"))
        origin = f"RANDOM INIT from conf/model/{family}_small.yaml ({sizes}), no checkpoint given"
    model.to(device).eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    return model, tokenizer, f"{family}: {origin}; {n_params:.2f}M parameters, vocabulary {model.vocab_size}"


def make_batches(model, tokenizer, abstracts, max_source_len: int, batch_size: int):
    encoded = [model.build_example(encode_text(tokenizer, a, max_source_len), None)[0] for a in abstracts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    return [(chunk, model.collate([(encoded[i], None, None) for i in chunk])["src_ids"])
            for chunk in (order[s:s + batch_size] for s in range(0, len(order), batch_size))]


def compare(methods: dict, batches, n: int, device) -> dict:
    """Run every method on every batch (alternating order); seconds and titles (input order) per method.
    A peer that fails on the warm-up batch (HF generate without the mode) is left out, its one-line reason
    in `unavailable`."""
    unavailable = {}
    for name in list(methods):  # warm-up
        try:
            methods[name](batches[0][1][:2].to(device))
        except Exception as e:  # HF raises ValueError or ImportError for a mode it cannot run here
            if name.startswith("ours"):
                raise
            unavailable[name] = " ".join(str(e).split())
            del methods[name]
    names = list(methods)
    seconds = {name: 0.0 for name in names}
    titles = {name: [None] * n for name in names}
    for i, (chunk, src) in enumerate(batches):
        src = src.to(device)
        for name in (names if i % 2 == 0 else names[::-1]):
            _sync(device)
            t0 = time.perf_counter()
            out = methods[name](src)
            _sync(device)
            seconds[name] += time.perf_counter() - t0
            for j, title in zip(chunk, out):
                titles[name][j] = title
        print(f"  batch {i + 1}/{len(batches)} ({src.size(0)} x {src.size(1)}): "
              + ", ".join(f"{k} {seconds[k]:.1f}s" for k in names), flush=True)
    return {"seconds": seconds, "titles": titles, "unavailable": unavailable}


COLUMNS = ["model", "mode", "method", "titles", "seconds", "titles/s", "mean length", "speed-up of ours", "target",
           "meets target", "identical titles"]


def result_rows(family: str, mode: str, run: dict, n: int) -> tuple[list[list[str]], bool]:
    """The table rows of one comparison (ours, then its peer), and whether it holds what it must: cached and
    uncached beam search (the peer where HF generate does not decode the family) agree on every title."""
    (name_a, sec_a), *peer = run["seconds"].items()
    titles_a = run["titles"][name_a]
    rows = [[family, mode, name_a, str(n), f"{sec_a:.2f}", f"{n / sec_a:.2f}",
             f"{sum(len(t) for t in titles_a) / n:.1f}", "", "", "", ""]]
    ok = True
    for name_b, sec_b in peer:
        titles_b = run["titles"][name_b]
        same = sum(a == b for a, b in zip(titles_a, titles_b))
        speedup = sec_b / sec_a if sec_a > 0 and sec_b > 0 else float("nan")
        target = TARGETS.get(family) if mode == "beam" else None  # the new modes: the ratio is reported, no target
        must_agree = not MODEL_CLASSES[family].hf_generates
        ok = not must_agree or same == n
        identical = ("n/a (other random stream)" if mode == "sample" and not must_agree
                     else f"{same}/{n}" + (" (must be all)" if must_agree else ""))
        rows.append([family, mode, name_b, str(n), f"{sec_b:.2f}", f"{n / sec_b:.2f}",
                     f"{sum(len(t) for t in titles_b) / n:.1f}", f"{speedup:.2f}x",
                     f">= {target:.0f}x" if target else "", ("yes" if speedup >= target else "no") if target else "",
                     identical])
    for name_b, reason in run["unavailable"].items():
        rows.append([family, mode, name_b, "", "", "", "", "", "", "", f"not run: {reason}"])
    return rows, ok


def decode_lines(cfg, modes) -> list[str]:
    """The report's description of each mode's settings (ours and HF's alike)."""
    d = cfg.decode
    lines = [f"decode: beam {d.beam_size}, max {d.max_len} title tokens, min {d.min_len}, length penalty "
             f"{d.length_penalty}, no_repeat_ngram {d.no_repeat_ngram}, repetition_penalty {d.repetition_penalty}; "
             f"HF generate: num_beams, max_new_tokens, min_new_tokens, length_penalty, no_repeat_ngram_size, "
             f"repetition_penalty alike, early_stopping=True, do_sample=False, suppress_tokens = special tokens "
             f"other than the end token"]
    if "sample" in modes:
        lines.append(f"sample: temperature {d.temperature}, top_k {d.top_k}, top_p {d.top_p}, seed {d.seed}; HF: "
                     f"do_sample=True, num_beams=1, the same temperature/top_k/top_p, torch.manual_seed(seed) "
                     f"before each batch")
    if "diverse" in modes:
        opts = mode_options(d, "diverse")
        lines.append(f"diverse: beam {opts['beam_size']} in {opts['beam_groups']} groups, diversity_penalty "
                     f"{opts['diversity_penalty']}; HF: num_beam_groups, diversity_penalty alike")
    return lines


# --------------------------------------------------------------------------- the run


def main(argv=None) -> int:
    args = parse_args(argv)
    cfgs = {f: compose_cfg(f, args) for f in FAMILIES}
    cfg = cfgs[FAMILIES[0]]  # what the families share (data, decode, trainer)
    device = set_up_device(cfg)
    corpus = Corpus.read(cfg, args.n)
    header = machine_lines(device)  # before the runs: its date and load average are those of the start
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        for family in FAMILIES:
            lines, family_rows, family_ok = bench_family(family, cfgs[family], args, corpus, Path(tmp), device)
            header += lines
            rows += family_rows
            ok = ok and family_ok
    header += settings_lines(cfg, args, corpus)
    write_report(Path(args.out), header, rows, verdict(args, ok))
    return 0 if ok else 1


def set_up_device(cfg) -> torch.device:
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    return pick_device(cfg.trainer.device, option="trainer.device")


class Corpus:
    """The dev abstracts every model decodes, and the training texts a random-init model's character vocabulary
    is built from: read on first use only, so that with a checkpoint for every family the training split is
    never read."""

    def __init__(self, cfg, data_dir: Path, abstracts: list[str]):
        self.cfg, self.data_dir, self.abstracts = cfg, data_dir, abstracts
        self._train_texts: list[str] = []

    @classmethod
    def read(cls, cfg, n: int) -> "Corpus":
        data_dir = resolve_data_dir(cfg.data.dir)
        dev = read_examples(data_dir / cfg.data.dev_file, skip_bad_lines=cfg.data.skip_bad_lines)[:n]
        return cls(cfg, data_dir, [e.abstract for e in dev])

    def train_texts(self) -> list[str]:
        if not self._train_texts:
            train = read_examples(self.data_dir / self.cfg.data.train_file,
                                  skip_bad_lines=self.cfg.data.skip_bad_lines)
            self._train_texts.extend(t for e in train for t in (e.title, e.abstract))
        return self._train_texts


def bench_family(family: str, fcfg, args, corpus: Corpus, tmp: Path, device) -> tuple[list[str], list, bool]:
    """One model's header lines, table rows and verdict over the modes asked for; a family with none of them is
    skipped before its model is built. The model lives only in this call, so it is released before the next
    family's is built."""
    hf_peer = MODEL_CLASSES[family].hf_generates  # the other modes have HF generate as their peer only
    modes = [m for m in MODES if m in args.modes and (hf_peer or m == "beam")]
    if not modes:
        return [], [], True
    checkpoint = getattr(args, f"checkpoint_{family}")
    model, tokenizer, description = make_model(family, checkpoint, fcfg, corpus.train_texts, tmp, device)
    batch_size = args.batch_size or int(fcfg.decode.batch_size)
    batches = make_batches(model, tokenizer, corpus.abstracts, int(fcfg.data.max_source_len), batch_size)
    header = [description]
    if hf_peer and model.copy_head is not None:
        header.append(f"note: this {family} model has a copy head, which HF generate does not know about: "
                      "the two searches score different distributions")
    rows, ok, n = [], True, len(corpus.abstracts)
    for mode in modes:
        methods = mode_methods(mode, model, mode_options(fcfg.decode, mode))
        print(f"{family}, {mode}: {n} abstracts in {len(batches)} batches of <= {batch_size}", flush=True)
        mode_rows, mode_ok = result_rows(family, mode, compare(methods, batches, n, device), n)
        rows += mode_rows
        ok = ok and mode_ok
    return header, rows, ok


def settings_lines(cfg, args, corpus: Corpus) -> list[str]:
    """The header lines after the models': the data, each mode's decoding settings, the overrides."""
    lines = [
        f"data: first {len(corpus.abstracts)} abstracts of {os.path.relpath(corpus.data_dir / cfg.data.dev_file)}, "
        f"cut to data.max_source_len={cfg.data.max_source_len} tokens, sorted by length, batches of "
        f"{args.batch_size or cfg.decode.batch_size}",
        *decode_lines(cfg, args.modes),
        f"overrides: {' '.join(args.overrides) or '(none)'}",
    ]
    if not all(getattr(args, f"checkpoint_{family}") for family in FAMILIES):
        lines.append("random-init models rarely emit the end token, so their titles tend to run to the maximum "
                     "length: the worst case for decoding cost (see 'mean length')")
    return lines


def verdict(args, ok: bool) -> str:
    return ("UniLM beam search not run (--modes)" if "beam" not in args.modes else
            "cached and uncached UniLM beam search agree on every title" if ok else
            "ERROR: cached and uncached UniLM beam search disagree on some titles")


def write_report(out: Path, header: list[str], rows: list[list[str]], verdict_line: str) -> None:
    """Print the report (less its title) and write it as markdown to `out`."""
    table = [f"| {' | '.join(COLUMNS)} |", f"|{'|'.join('---' for _ in COLUMNS)}|"]
    table += [f"| {' | '.join(r)} |" for r in rows]
    bullets = [f"- {h}" for h in header]
    report = ["# Decoding speed: our searches vs Hugging Face generate (BART) and vs prefix recompute (UniLM)",
              "", *bullets, "", *table, "", verdict_line, ""]
    print("\n" + "\n".join(bullets) + "\n\n" + "\n".join(table) + "\n\n" + verdict_line)
    write_text_atomically(out, "\n".join(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
