"""Decoding speed (titles per second) of our beam search, on the same weights and dev abstracts:

  * BART:  our cached beam search  vs  Hugging Face `generate` (beam search with its own cache)
  * UniLM: our cached beam search  vs  our uncached one (`use_cache=False`: the whole abstract +
           prefix recomputed at every step, the reference the cached path must equal)

    python scripts/bench_decode.py [--n 200] [--batch-size B] [--checkpoint-unilm PATH]
                                   [--checkpoint-bart PATH] [--out outputs/benchmarks/bench_decode.md]
                                   [hydra overrides ...]

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
agree on every title (exit status 1 otherwise).

The first N dev abstracts (cut to data.max_source_len tokens) are sorted by length and cut into
batches of --batch-size (default decode.batch_size), the same batches for both methods; each batch
is decoded by both methods in turn, in alternating order, so machine noise hits both alike. One
untimed warm-up batch (2 abstracts) per method comes first.

Random-weight models rarely emit the end token, so their titles run to decode.max_len: the worst case
for decoding cost (the longest prefixes), which the report states.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from seq2seq_rdrop.data import read_examples, resolve_data_dir
from seq2seq_rdrop.decoding import beam_search
from seq2seq_rdrop.distributed import pick_device
from seq2seq_rdrop.machine import machine_lines
from seq2seq_rdrop.models import build_model, load_model
from seq2seq_rdrop.tokenizer import build_tokenizer, encode_text, load_tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
FAMILIES = ("unilm", "bart")
TARGETS = {"bart": 2.0, "unilm": 5.0}  # speed-up of our cached beam search over the other method


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="dev abstracts to decode (default 200)")
    parser.add_argument("--batch-size", type=int, default=None, help="abstracts per batch (default decode.batch_size)")
    parser.add_argument("--checkpoint-unilm", default=None, help="UniLM checkpoint directory (default: random init)")
    parser.add_argument("--checkpoint-bart", default=None, help="BART checkpoint directory (default: random init)")
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
            parser.error(f"{override}: the models are chosen by the script (use --checkpoint-unilm/--checkpoint-bart)")
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


# --------------------------------------------------------------------------- the two kinds of search


def ours(model, src, dcfg, use_cache=True) -> list[list[int]]:
    hyps = beam_search(model, src, beam_size=dcfg.beam_size, max_len=dcfg.max_len, min_len=dcfg.min_len,
                       length_penalty=dcfg.length_penalty, no_repeat_ngram=dcfg.no_repeat_ngram,
                       num_return=1, use_cache=use_cache)
    return [h[0].tokens for h in hyps]


def hf_generation_config(model, dcfg):
    from transformers import GenerationConfig

    suppressed = [i for i in model.special_ids() if i != model.eos_id]
    return GenerationConfig(
        num_beams=dcfg.beam_size, max_new_tokens=dcfg.max_len, min_new_tokens=dcfg.min_len,
        early_stopping=True, length_penalty=float(dcfg.length_penalty), do_sample=False,
        no_repeat_ngram_size=int(dcfg.no_repeat_ngram), num_return_sequences=1, use_cache=True,
        decoder_start_token_id=model.decoder_start_id, bos_token_id=model.bos_id, eos_token_id=model.eos_id,
        pad_token_id=model.pad_id, forced_bos_token_id=None, forced_eos_token_id=None,
        suppress_tokens=suppressed or None,
    )


@torch.no_grad()
def hf_generate(model, src, gen_cfg) -> list[list[int]]:
    out = model.bart.generate(input_ids=src, attention_mask=src != model.pad_id, generation_config=gen_cfg)
    titles = []
    for row in out.tolist():
        row = row[1:]  # the decoder start token
        if model.eos_id in row:
            row = row[:row.index(model.eos_id)]
        titles.append([t for t in row if t != model.pad_id])
    return titles


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
    """Run every method on every batch (alternating order); seconds and titles (input order) per method."""
    names = list(methods)
    for name in names:  # warm-up
        methods[name](batches[0][1][:2].to(device))
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
    return {"seconds": seconds, "titles": titles}


def main(argv=None) -> int:
    args = parse_args(argv)
    cfgs = {f: compose_cfg(f, args) for f in FAMILIES}
    cfg = cfgs["unilm"]  # what the families share (data, decode, trainer)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = pick_device(cfg.trainer.device, option="trainer.device")
    data_dir = resolve_data_dir(cfg.data.dir)
    dev = read_examples(data_dir / cfg.data.dev_file, skip_bad_lines=cfg.data.skip_bad_lines)[:args.n]
    abstracts = [e.abstract for e in dev]
    n = len(abstracts)
    train_cache: list = []

    def train_texts():
        if not train_cache:
            train = read_examples(data_dir / cfg.data.train_file, skip_bad_lines=cfg.data.skip_bad_lines)
            train_cache.extend(t for e in train for t in (e.title, e.abstract))
        return train_cache

    header = machine_lines(device)
    results = []  # (family, name, seconds, titles)
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        for family in ("bart", "unilm"):
            fcfg = cfgs[family]
            dcfg = fcfg.decode
            checkpoint = args.checkpoint_bart if family == "bart" else args.checkpoint_unilm
            model, tokenizer, description = make_model(family, checkpoint, fcfg, train_texts, Path(tmp), device)
            batch_size = args.batch_size or int(dcfg.batch_size)
            batches = make_batches(model, tokenizer, abstracts, int(fcfg.data.max_source_len), batch_size)
            header.append(description)
            if family == "bart":
                gen_cfg = hf_generation_config(model, dcfg)
                methods = {"ours (cached beam search)": lambda s, m=model: ours(m, s, dcfg),
                           "HF generate": lambda s, m=model: hf_generate(m, s, gen_cfg)}
                if model.copy_head is not None:
                    header.append("note: this BART has a copy head, which HF generate does not know about: "
                                  "the two searches score different distributions")
            else:
                methods = {"ours (cached beam search)": lambda s, m=model: ours(m, s, dcfg),
                           "ours uncached (prefix recompute)": lambda s, m=model: ours(m, s, dcfg, use_cache=False)}
            print(f"{family}: {n} abstracts in {len(batches)} batches of <= {batch_size}", flush=True)
            run = compare(methods, batches, n, device)
            for name in methods:
                results.append((family, name, run["seconds"][name], run["titles"][name]))
            del model

    header += [
        f"data: first {n} abstracts of {data_dir / cfg.data.dev_file}, cut to data.max_source_len="
        f"{cfg.data.max_source_len} tokens, sorted by length, batches of "
        f"{args.batch_size or cfg.decode.batch_size}",
        f"decode: beam {cfg.decode.beam_size}, max {cfg.decode.max_len} title tokens, min {cfg.decode.min_len}, "
        f"length penalty {cfg.decode.length_penalty}, no_repeat_ngram {cfg.decode.no_repeat_ngram}; "
        f"HF generate: num_beams, max_new_tokens, min_new_tokens, length_penalty, no_repeat_ngram_size alike, "
        f"early_stopping=True, do_sample=False, suppress_tokens = special tokens other than the end token",
        f"overrides: {' '.join(args.overrides) or '(none)'}",
    ]
    if not (args.checkpoint_bart and args.checkpoint_unilm):
        header.append("random-init models rarely emit the end token, so their titles tend to run to the maximum "
                      "length: the worst case for decoding cost (see 'mean length')")

    columns = ["model", "method", "titles", "seconds", "titles/s", "mean length", "speed-up of ours",
               "target", "meets target", "identical titles"]
    rows, ok = [], True
    for family in ("bart", "unilm"):
        (_, name_a, sec_a, titles_a), (_, name_b, sec_b, titles_b) = [r for r in results if r[0] == family]
        same = sum(a == b for a, b in zip(titles_a, titles_b))
        speedup = (n / sec_a) / (n / sec_b) if sec_a > 0 and sec_b > 0 else float("nan")
        target = TARGETS[family]
        if family == "unilm" and same != n:
            ok = False
        for name, sec, titles, is_ours in ((name_a, sec_a, titles_a, True), (name_b, sec_b, titles_b, False)):
            mean_len = sum(len(t) for t in titles) / n
            rows.append([family, name, str(n), f"{sec:.2f}", f"{n / sec:.2f}", f"{mean_len:.1f}",
                         "" if is_ours else f"{speedup:.2f}x", "" if is_ours else f">= {target:.0f}x",
                         "" if is_ours else ("yes" if speedup >= target else "no"),
                         "" if is_ours else f"{same}/{n}" + (" (must be all)" if family == "unilm" else "")])
    table = [f"| {' | '.join(columns)} |", f"|{'|'.join('---' for _ in columns)}|"]
    table += [f"| {' | '.join(r)} |" for r in rows]
    verdict = ("cached and uncached UniLM beam search agree on every title" if ok else
               "ERROR: cached and uncached UniLM beam search disagree on some titles")
    report = ["# Decoding speed: our beam search vs Hugging Face generate (BART) and vs prefix recompute (UniLM)",
              "", *[f"- {h}" for h in header], "", *table, "", verdict, ""]
    print("\n" + "\n".join(f"- {h}" for h in header) + "\n\n" + "\n".join(table) + "\n\n" + verdict)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report), encoding="utf-8")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
