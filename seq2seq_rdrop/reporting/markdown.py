"""comparison.md: how the numbers were made, then the summary, score, bootstrap, published, cost, equal-time,
diagnostics and run-grid tables, then the notes."""
from __future__ import annotations

import math
from pathlib import Path

from ..metrics import METRIC_NAMES, WORD_METRIC_NAMES
from ..regularizer_names import PUBLISHED_LABELS
from .formatting import (METRIC_LABELS, cell, ci_text, delta_text, fmt, json_list, p_text, pm, pm_small, seeds_text,
                         table)
from .contrasts import contrasts_markdown
from .published import PUBLISHED
from .runs import relative
from .statistics import is_missing

REPO_ROOT = Path(__file__).resolve().parents[2]


def method_text(report: dict) -> str:
    b, n_boot, seed = report["baseline"], report["n_boot"], report["seed"]
    return (
        f"Δ R-L is the regularizer's per-example ROUGE-L minus {b}'s on the same {report['split']} examples, "
        f"from each run's example_scores.json (or recomputed from its predictions_{report['split']}*.tsv with "
        f"seq2seq_rdrop.metrics.score_examples); each seed s pairs the regularizer's run with {b}'s run of seed s. "
        f"Intervals and p come from a hierarchical paired bootstrap, which counts the training runs as a source "
        f"of variance: a resample draws the paired seeds with replacement and the example indices with "
        f"replacement (one draw for all seeds: every seed is scored on the same examples, whose effects carry "
        f"across seeds); its statistic is the mean over the drawn seeds of the mean per-example difference. {n_boot} resamples (numpy default_rng({seed}), restarted for each regularizer "
        f"and decoding). Δ is that statistic on all examples; the 95% CI is the 2.5th-97.5th percentile of the "
        f"resampled statistics; the two-sided p is min(1, 2 × min(share ≤ 0, share ≥ 0)), resolution 1/{n_boot}. "
        f"With three seeds the seed level has few distinct resamples, so these intervals are coarse; they are "
        f"still the honest ones. {holm_text(report['n_comparisons'], b, report.get('protocol'))} The bootstrap "
        f"table also keeps the example-only interval (the same example indices for every seed, runs held fixed), "
        f"which ignores seed variance and is narrower. Only seeds both have enter, so Δ can differ from the "
        f"difference of the mean columns."
    )


def holm_text(n_comparisons: int, baseline: str, protocol: dict | None = None) -> str:
    if protocol:
        return (f"Holm's step-down adjustment runs over the declared family alone ({n_comparisons} comparisons: "
                f"{', '.join(protocol['family'])} against {baseline} at the primary endpoint, "
                f"{protocol['primary_endpoint']['decode']}); every other p is unadjusted and its Holm cell reads n/a.")
    if not n_comparisons:
        return f"No run here has per-example scores to compare with {baseline}'s, so there is no p to adjust (Holm)."
    return (f"Holm's step-down adjustment over all {n_comparisons} comparisons of this report (every regularizer "
            f"against {baseline}, every decoding) is given beside the raw p.")


def kept_text(setup: dict, selected_on: str = "dev") -> str:
    kept = json_list(setup["kept"])
    steps = json_list(setup["kept_step"])
    if kept == "last":
        return f"the final weights (metrics.json kept = last; step {steps})"
    if kept == "best" and selected_on == "val":
        return (f"the checkpoint with the best validation score (metrics.json kept = best, selected_on = val; "
                f"steps {steps}): dev chose nothing")
    if kept == "best":
        return (f"the checkpoint with the best dev score (metrics.json kept = best; steps {steps}): "
                "dev scores are then selected on dev")
    return f"the weights metrics.json calls kept = {kept} (steps {steps})"


def md_header(report: dict) -> list[str]:
    root, setup = report["root"], report["setup"]
    try:
        where = f"`{relative(root, REPO_ROOT)}` (relative to the repository)"
    except ValueError:
        where = "this directory"
    labels = "; ".join(f"{d} = {report['labels'][d]}" for d in report["decodes"])
    finished, found, cut_off = report["n_runs"]
    lines = ["# Regularizer comparison", ""]
    if report["notes_md"]:
        lines += [report["notes_md"], ""]
    return lines + [
        "## How these numbers were made", "",
        f"- Built by `python scripts/compare.py` from the run files in {where}; paths below are relative to it.",
        f"- Runs: {finished} finished of {found} run directories"
        + (f" ({cut_off} of them cut off in their final evaluation, scored from eval_log.csv)" if cut_off else "")
        + "; the grid at the end lists what is missing.",
        f"- Split: **{report['split']}**. Scores are those of {kept_text(setup, report['curve_split'])}.",
        f"- Decodings: {labels}. Total optimizer steps per run: {json_list(setup['total_steps'])}"
        + (f" (trained: {json_list(setup['steps'])})" if setup["steps"] != setup["total_steps"] else "") + ".",
        f"- Data: {json_list(setup['data'])}.",
        f"- Model: {json_list(setup['model'])}.",
        "- Mean ± sd over seeds; sd is the sample sd (ddof=1), n/a with one seed.",
        f"- {method_text(report)}", "",
    ]


def md_summary(report: dict) -> list[str]:
    decodes, n_boot, base = report["decodes"], report["n_boot"], report["baseline"]
    header = ["regularizer", "seeds"]
    for d in decodes:
        name = report["labels"][d] if d == "main" else d
        header += [f"R-L {name}", f"Δ R-L {name} [95% CI], p"]
    header += ["s/step", f"time / {base}", "published R-L", "published Δ"]
    rows = []
    for row in report["rows"]:
        cells = [row["regularizer"], seeds_text(row["scores"]["main"]["seeds"])]
        for d in decodes:
            cells += [pm(row["scores"][d]["rouge-l"]), delta_text(row["boot"][d], n_boot)]
        pub = row["published"]
        cells += [fmt(row["cost"]["sps"], ".3g") + (" †" if row["cost"]["source"] == "runs" else ""),
                  fmt(row["cost"]["ratio"], ".2f") + ("×" if not is_missing(row["cost"]["ratio"]) else ""),
                  f"{pub['rouge-l']:.2f}" if pub else "-", f"{pub['delta']:+.2f}" if pub else "-"]
        rows.append(cells)
    return [f"## Summary: ROUGE-L on {report['split']}", ""] + table(header, rows) + [
        "", "s/step and time: see Training cost († = wall times of the runs, not a benchmark).", "",
        order_text(report), ""]


def order_text(report: dict) -> str:
    ours = [(row["scores"]["main"]["rouge-l"][0], row["regularizer"]) for row in report["rows"]
            if row["published"] and not is_missing(row["scores"]["main"]["rouge-l"][0])]
    ours = [reg for _, reg in sorted(ours, key=lambda t: (-t[0], t[1]))]
    names = {PUBLISHED_LABELS[r] for r in ours}
    published = [n for n, _ in sorted(PUBLISHED.items(), key=lambda kv: -kv[1]["rouge-l"]) if n in names]
    return (f"Order by mean R-L, best first: ours ({report['labels']['main']}) "
            f"{' > '.join(ours) or 'n/a'}; published (greedy, CLGE csl val) {' > '.join(published) or 'n/a'}. "
            "Published rows: random_replace and random_replace_vocab both map to 'random replacement'.")


def cost_source_text(report: dict) -> str:
    bench, base = report["bench"], report["baseline"]
    text = ("s/step: seconds per optimizer step. † (source 'runs') = mean train_seconds / total_steps of the "
            f"runs: wall times of a shared machine, not a benchmark; the time ratio is then mean train_seconds "
            f"over {base}'s.")
    if bench:
        text += (f" Source 'bench' = the medians of bench_train.json (machine: {bench.get('machine', 'n/a')}; "
                 f"command: `{bench.get('command', 'n/a')}`); the time ratio is then s/step × total steps over "
                 f"{base}'s bench s/step × total steps.")
    else:
        text += " There is no bench_train.json (with the baseline) in this directory."
    return text


def md_scores(report: dict) -> list[str]:
    lines = []
    for d in report["decodes"]:
        header = ["regularizer", "seeds"] + [METRIC_LABELS[m] for m in METRIC_NAMES]
        rows = [[row["regularizer"], seeds_text(row["scores"][d]["seeds"])]
                + [pm(row["scores"][d][m]) for m in METRIC_NAMES] for row in report["rows"]]
        lines += [f"## Scores on {report['split']}: {d} ({report['labels'][d]})", ""] + table(header, rows) + [""]
    return lines


def md_word_scores(report: dict) -> list[str]:
    """Word-level ROUGE (secondary), one table per decoding that some run recorded it for; nothing for
    reports of older runs."""
    lines = []
    for d in report["decodes"]:
        rows = [[row["regularizer"], seeds_text(w["seeds"]), *(pm(w[m]) for m in WORD_METRIC_NAMES)]
                for row in report["rows"] if (w := row["word_scores"][d]) is not None]
        if rows:
            lines += [f"## Word-level ROUGE on {report['split']} (secondary): {d} ({report['labels'][d]})", "",
                      "ROUGE F1 over jieba words, lower-cased (`metrics.word_rouge`), as Chinese summarization papers "
                      "report it beside character ROUGE; every comparison in this report uses the characters.", "",
                      *table(["regularizer", "seeds", "word R-1", "word R-2", "word R-L"], rows), ""]
    return lines


def md_bootstrap(report: dict) -> list[str]:
    header = ["regularizer", "decoding", "paired seeds", "Δ per seed", "examples", "Δ R-L",
              "95% CI (seeds × examples)", "p", f"p Holm (m = {report['n_comparisons']})",
              "95% CI (examples only)", "p (examples only)"]
    rows = []
    for row in report["rows"]:
        for d in report["decodes"]:
            b, n_boot = row["boot"][d], report["n_boot"]
            if row["regularizer"] == report["baseline"]:
                continue
            rows.append([row["regularizer"], d, ", ".join(map(str, b["seeds"])) or "none",
                         ", ".join(f"{x:+.2f}" for x in b["per_seed"]) or "n/a", fmt(b["n_examples"], "d"),
                         fmt(b["delta"], "+.2f"), ci_text(b), p_text(b["p_value"], n_boot),
                         p_text(b["p_holm"], n_boot), ci_text(b["examples_only"]),
                         p_text(b["examples_only"]["p_value"], n_boot)])
    return [f"## Paired bootstrap of ROUGE-L against {report['baseline']}", ""] + table(header, rows) + [""]


def md_protocol(report: dict) -> list[str]:
    """The declared endpoints and family (REPORT_DIR/protocol.yaml), before any result."""
    protocol = report.get("protocol")
    if not protocol:
        return []
    primary, secondary = protocol["primary_endpoint"], protocol["secondary_endpoints"]

    def endpoint(e):
        return f"{e['split']} {e['metric']}, {e['decode']} ({report['labels'].get(e['decode'], 'no run has it yet')})"

    capped = report["capped"]
    return ["## Declared before the runs (protocol.yaml)", "",
            f"- Primary endpoint: {endpoint(primary)}.",
            "- Secondary endpoints: " + "; ".join(endpoint(e) for e in secondary) + ".",
            f"- Confirmatory family: {', '.join(protocol['family'])}, each against {protocol['reference_row']} at the "
            "primary endpoint; Holm over these alone.",
            "- Pairwise contrasts among them (below) and every secondary contrast carry their 95% intervals and no "
            "multiplicity claim; an order between two methods is read only from an interval of their direct "
            "contrast that clears zero.",
            f"- Runs whose kept step is their last step (still improving when they stopped): {len(capped)}"
            + (" (" + ", ".join(f"{r} seed {s}" for r, s in capped) + ")" if capped else "") + ".", ""]


def md_contrasts(report: dict) -> list[str]:
    """The declared pairwise contrasts, one table per endpoint decoding."""
    if not report.get("contrasts"):
        return []
    lines = ["## Pairwise contrasts (declared family and its reference row)", ""]
    for decode, rows in report["contrasts"].items():
        lines += [contrasts_markdown(rows, report["split"], report["labels"][decode], report["n_boot"]), ""]
    return lines


def md_published(report: dict) -> list[str]:
    header = ["regularizer", "published row"] + [f"ours {METRIC_LABELS[m]}" for m in METRIC_NAMES] \
        + [f"published {METRIC_LABELS[m]}" for m in METRIC_NAMES] + ["published Δ R-L"]
    rows = [[row["regularizer"], row["published"]["name"]]
            + [fmt(row["scores"]["main"][m][0]) for m in METRIC_NAMES]
            + [f"{row['published'][m]:.2f}" for m in METRIC_NAMES] + [f"{row['published']['delta']:+.2f}"]
            for row in report["rows"] if row["published"]]
    return ["## Published rows beside ours", "",
            f"Ours: mean over seeds, {report['split']} split, {report['labels']['main']}. Published: the reference's "
            "CLGE csl val rows, greedy decoding, BERT-wwm-base fine-tuned to its best epoch.", ""] \
        + table(header, rows) + [""]


def md_cost(report: dict) -> list[str]:
    rows = [[row["regularizer"], fmt(row["cost"]["sps"], ".4g"),
             {"bench": "bench", "runs": "runs †"}.get(row["cost"]["source"], "n/a"),
             fmt(row["cost"]["seconds"] / 60 if not is_missing(row["cost"]["seconds"]) else math.nan, ".1f"),
             fmt(row["cost"]["ratio"], ".2f") + ("×" if not is_missing(row["cost"]["ratio"]) else "")]
            for row in report["rows"]]
    lines = ["## Training cost", ""] + table(
        ["regularizer", "s/step", "source", "minutes per run", f"time / {report['baseline']}"], rows)
    bench = report["bench"]
    if bench and bench.get("setup"):
        lines += ["", "bench_train.json setup: " + "; ".join(map(str, bench["setup"]))]
    return lines + ["", cost_source_text(report), ""]


def md_hardware_cost(report: dict) -> list[str]:
    """Cost per step of each method (the runs' regularizer types) on each hardware of cost_sources.yaml: the
    benchmarks' medians and their ratio to the baseline measured in the same benchmark; nothing without it."""
    sources = report.get("hardware_cost") or {}
    if not sources:
        return []
    declared = list((report.get("protocol") or {}).get("family") or [])  # every method of the protocol, run or not
    methods = ["baseline", *declared, *(m for m in report["methods"] if m != "baseline" and m not in declared)]
    header = ["method"] + [f"{label}: s/step (ratio)" for label in sources]
    rows = []
    for method in methods:
        cells = []
        for bench in sources.values():
            sps, base = bench["seconds_per_step"].get(method), bench["seconds_per_step"]["baseline"]
            cells.append("not measured" if sps is None else f"{sps:.4g} ({sps / base:.2f}×)")
        rows.append([method, *cells])
    lines = ["## Cost per step on each hardware", "",
             "Median seconds per optimizer step in each benchmark (scripts/bench_train.py: the methods' steps "
             "interleaved, round-robin, on the same batches), the ratio to the baseline measured in the same "
             "benchmark in brackets. Sources (`cost_sources.yaml`):", ""]
    for label, bench in sources.items():
        facts = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in bench.get("header", []) if ":" in line}
        lines.append(f"- {label}: `{bench['path']}` ({facts.get('date', 'n/a')}; {facts.get('device', 'n/a')}; "
                     f"{bench.get('machine', 'n/a')}; model: {facts.get('model', 'n/a')}); command: "
                     f"`{bench.get('command', 'n/a')}`")
    return lines + [""] + table(header, rows) + [""]


def md_equal_time(report: dict) -> list[str]:
    base, split = report["baseline"], report["curve_split"]
    rows = [[row["regularizer"], fmt(row["equal_time"]["steps"], ".0f"), row["equal_time"]["n"],
             pm((row["equal_time"]["mean"], row["equal_time"]["sd"])), ", ".join(row["equal_time"]["flags"]) or "-"]
            for row in report["rows"]]
    budget = (f"Each regularizer's greedy {split} ROUGE-L (its eval_log.csv) after the training time a whole {base} "
              f"run needs: equivalent steps = {base} steps trained × ({base} s/step ÷ regularizer s/step), both s/step "
              "from the regularizer's source in the cost table; ")
    if split == "val":  # runs keep their best validation step: read each curve as that rule would have
        read = (f"the best evaluation at or before that step (the weights the run would have kept had it stopped "
                f"there; past the last evaluation the best of all, 'capped'; {base}'s row: the best of its whole "
                "run), then mean ± sd over seeds. With a constant learning rate after a fixed warm-up, a run's "
                "first M steps are exactly a complete run of M steps, so this is the regularizer against a "
                f"{base} run of equal time. The other way round, {base} given a regularizer's time keeps its best "
                f"validation step within that many more steps: where {base}'s validation curve has peaked before "
                "its last evaluation, the best-on-validation scores of the summary are already that comparison.")
    else:
        read = ("R-L is linearly interpolated on the run's eval_log.csv (step, rouge-l) curve, capped at its last "
                "evaluation ('capped'), then mean ± sd over seeds. A curve point mid-schedule is not the same as a "
                "shorter run with its own annealed schedule: there the learning rate has not yet decayed, so with a "
                "decaying schedule this table is no equal-time competitor and favours the baseline (whose end point "
                "is annealed).")
    return [f"## Equal-time comparison ({split} R-L, greedy, at {base}'s training time)", "", budget + read, ""] \
        + table(["regularizer", "equivalent steps", "seeds", f"{split} R-L", "note"], rows) + [""]


def md_diagnostics(report: dict) -> list[str]:
    names = sorted({k for row in report["rows"] for k in row["diagnostics"]})
    if not names:
        return []
    regs = [row for row in report["rows"] if row["diagnostics"]]
    # a sweep may diagnose only some seeds (run_comparison --no-diagnostics): say which ones each mean is over
    measured = ["seeds measured"] + [" ".join(str(s) for s in row["diagnostics_seeds"]) for row in regs]
    rows = [measured] + [[name] + [pm_small(row["diagnostics"].get(name, (math.nan, math.nan))) for row in regs]
                         for name in names]
    return ["## Diagnostics (kept weights; mean ± sd over the seeds measured)", "",
            "From each run's diagnostics.json (runs[0].measures, at the run's own dropout: dropout_hidden) and, "
            "where present, diagnostics_dropout0.1.json (every checkpoint at hidden and attention dropout 0.1: "
            "like for like; names ending @ dropout 0.1). The nll_corrupt / rouge_l_corrupt probe draws its noise "
            "as random replacement trains; the own-prefix measures (nll_after_own_prefix_k vs "
            "nll_after_gold_prefix_k) use the model's own greedy tokens instead.", ""] \
        + table(["measure"] + [row["regularizer"] for row in regs], rows) + [""]


def md_grid(report: dict) -> list[str]:
    regs, seeds, status = report["grid"]
    lines = ["## Runs: regularizer × seed", ""]
    lines += table(["regularizer"] + [f"seed {s}" for s in seeds],
                    [[r] + [status[(r, s)] for s in seeds] for r in regs])
    lines += ["", "ok* = finished but partly usable (see below)."]
    if report["problems"]:
        lines += [""] + table(["regularizer", "seed", "what", "directory"],
                               [[p.regularizer, p.seed, p.reason, f"`{p.path}`" if p.path else "-"]
                                for p in report["problems"]])
    else:
        lines += ["", "Nothing missing: every run of the grid finished with all its files."]
    return lines + [""]


def md_notes(report: dict) -> list[str]:
    items = report["notes"] + report["warnings"]
    return ["## Notes", ""] + [f"- {cell(n)}" for n in items] + [""] if items else []


def write_markdown(path: Path, report: dict) -> None:
    sections = (md_header, md_protocol, md_summary, md_scores, md_word_scores, md_bootstrap, md_contrasts,
                md_published, md_cost, md_hardware_cost, md_equal_time, md_diagnostics, md_grid, md_notes)
    lines = [line for section in sections for line in section(report)]
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
