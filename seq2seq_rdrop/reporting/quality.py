"""The quality preset's report: each seed's dev scores, their mean with an interval that resamples seeds and
examples, the margin over the one-line rule (metrics.rule_title) and whether the titles read as titles.

It reads REPORT_DIR/runs/<name>/metrics.json, example_scores.json and pretrain/metrics.json (the small files
scripts/run_quality_preset.py leaves in its run directory) and the dev file, from which it recomputes the
rule's per-example scores; it writes REPORT_DIR/report.md, byte-identical from the same files.

REPORT_DIR/targets.yaml, when present, declares the targets before the runs (issue 40's: a level and a margin
over the rule for the mean of the seeds, a margin for a re-ranker without the rule feature, each well-formedness
rate at most a multiple of the references'; and the command the runs used); without it, issue 31's bar.
REPORT_DIR/heldout/<name>/ holds runs trained with data.holdout_test (fewer training pairs): they are reported
in the held-out section only, never in the dev mean of the runs the preset command makes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..atomic_files import write_text_atomically
from ..data import read_examples
from ..metrics import WORD_METRIC_NAMES, rule_title, score_examples
from ..rerank import parse_weights
from ..title_form import FORM_LABELS
from .formatting import table
from .runs import CompareError, damaged, load_json
from .statistics import hierarchical_bootstrap, mean_sd

BAR_ROUGE_L = 50.0  # issue 31's bar: dev ROUGE-L of the mean of >= 3 seeds ...
BAR_ABOVE_RULE = 3.0  # ... and at least this much above the one-line rule
MIN_SEEDS = 3
DEFAULT_COMMAND = ("python scripts/run_quality_preset.py seed=S --run-dir outputs/runs/<run> trainer.num_threads=1 "
                   "--pretrain-override trainer.num_threads=1")
TARGETS_MAX_BYTES = 64 * 1024
SHAPES = (("length", "length (characters)", "{:.1f}"), ("unbalanced_brackets", "unbalanced brackets", "{:.1%}"),
          ("boilerplate", "copied boilerplate", "{:.1%}"), ("repetitive", "a repeated 3-gram", "{:.1%}"),
          ("starts_jiyu", "starting with 基于", "{:.1%}"))
FORM_SHAPES = tuple((k, label, "{:.1%}") for k, label in FORM_LABELS.items())  # runs since title_form's checks


class QualityReportError(RuntimeError):
    """Run files that cannot make the report (missing, or scored on a different dev file)."""


@dataclass(frozen=True)
class Targets:
    """What the runs must reach, declared before them (REPORT_DIR/targets.yaml); the defaults are issue 31's bar."""
    rouge_l: float = BAR_ROUGE_L
    above_rule: float = BAR_ABOVE_RULE
    min_seeds: int = MIN_SEEDS
    no_rule_above: float | None = None  # the margin a re-ranker without the rule feature must keep
    form_ratio: float | None = None  # each well-formedness rate at most this times the references'
    command: str = DEFAULT_COMMAND
    decoding: str | None = None  # the runs' decoding the targets judge (rescore_run.py's NAME); None = main
    source: str = ""  # the file they came from ("" = the defaults)


def load_targets(report_dir: Path) -> Targets:
    """REPORT_DIR/targets.yaml (plain YAML, size-capped, only the known keys), or issue 31's bar without it."""
    path = report_dir / "targets.yaml"
    if not path.exists():
        return Targets()
    if not path.is_file() or path.stat().st_size > TARGETS_MAX_BYTES:
        raise QualityReportError(f"{path}: not a regular file of at most {TARGETS_MAX_BYTES} bytes")
    try:
        given = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise QualityReportError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    known = {"rouge_l", "above_rule", "min_seeds", "no_rule_above", "form_ratio", "command", "decoding"}
    if not isinstance(given, dict) or set(given) - known:
        raise QualityReportError(f"{path}: expected a mapping of {', '.join(sorted(known))}; "
                                 f"got {sorted(set(given) - known) if isinstance(given, dict) else type(given).__name__}")
    try:
        numbers = {k: float(given[k]) for k in ("rouge_l", "above_rule", "no_rule_above", "form_ratio") if k in given}
        seeds = {"min_seeds": int(given["min_seeds"])} if "min_seeds" in given else {}
    except (TypeError, ValueError):
        raise QualityReportError(f"{path}: rouge_l, above_rule, no_rule_above, form_ratio and min_seeds must be "
                                 "numbers") from None
    decoding = str(given["decoding"]) if given.get("decoding") else None
    return Targets(**numbers, **seeds, command=str(given.get("command", DEFAULT_COMMAND)), decoding=decoding,
                   source=path.as_posix())


@dataclass
class PresetRun:
    name: str
    metrics: dict
    pretrain: dict | None  # pretrain/metrics.json; None when the run fine-tuned without pretraining
    rouge_l: np.ndarray  # dev ROUGE-L per example, in dev-file order
    test_rouge_l: np.ndarray | None = None  # the held-out split's (data.holdout_test), when the run scored one
    as_run_rouge_l: float | None = None  # the main decoding's dev R-L when Targets.decoding took its place

    @property
    def minutes(self) -> dict[str, float]:
        pre = self.pretrain or {}
        return {"pretrain": (pre.get("train_seconds", 0) + pre.get("eval_seconds", 0)) / 60,
                "fine-tune": self.metrics["train_seconds"] / 60, "dev": self.metrics["eval_seconds"] / 60}


def as_decoding(metrics: dict, scores: dict, name: str | None) -> tuple[dict, dict, float | None]:
    """(metrics, per-example scores, the main decoding's dev R-L or None) with the decoding `name` (one that
    scripts/rescore_run.py or trainer.final_decodes recorded) in the place of the main one, so every table reads
    it; unchanged when name is None or the run has no such decoding (its main decoding is then the one meant)."""
    if not name or name not in metrics.get("decodes", {}):
        return metrics, scores, None
    metrics, scores = json.loads(json.dumps(metrics)), json.loads(json.dumps(scores))  # copies to change
    as_run, as_run_decode = metrics["dev"]["rouge-l"], metrics.get("decode", {})
    metrics["decode"] = {**as_run_decode, **(metrics["decodes"][name].get("overrides") or {})}  # what NAME decoded with
    metrics["as_run_decode"] = as_run_decode
    for split in ("dev", "test"):
        if split in metrics["decodes"][name]:
            metrics[split] = metrics["decodes"][name][split]
            scores[split]["main"] = scores[split][name]
            for table in (metrics.get(f"{split}_title_shape"), metrics.get("word_rouge", {}).get(split)):
                if table and name in table:
                    table["main"] = table[name]
    return metrics, scores, as_run


def load_runs(report_dir: Path, folder: str = "runs", required: bool = True, decoding: str | None = None) -> list[PresetRun]:
    """Every finished run under report_dir/<folder>/, ordered by seed, read at `decoding` (as_decoding)."""
    runs = []
    for metrics_path in sorted((report_dir / folder).glob("*/metrics.json")):
        run_dir = metrics_path.parent
        scores_path = run_dir / "example_scores.json"
        if not scores_path.is_file():
            raise QualityReportError(f"{scores_path}: missing (the per-example scores the intervals resample)")
        pretrain_path = run_dir / "pretrain" / "metrics.json"
        try:
            metrics, scores, as_run = as_decoding(load_json(metrics_path), load_json(scores_path), decoding)
            try:
                rouge_l = np.asarray(scores["dev"]["main"]["rouge-l"], dtype=float)
            except (KeyError, TypeError, ValueError):
                raise damaged(scores_path, "no list of numbers at dev.main.rouge-l") from None
            test = (scores.get("test") or {}).get("main")
            runs.append(PresetRun(name=run_dir.name, metrics=metrics, rouge_l=rouge_l,
                                  pretrain=load_json(pretrain_path) if pretrain_path.is_file() else None,
                                  test_rouge_l=np.asarray(test["rouge-l"], dtype=float) if test else None,
                                  as_run_rouge_l=as_run))
        except CompareError as e:  # a damaged run file, named
            raise QualityReportError(str(e)) from None
    if not runs and required:
        raise QualityReportError(f"{report_dir / folder}: no run directory with a metrics.json")
    return sorted(runs, key=lambda r: (r.metrics["seed"], r.name))


def rule_rouge_l(dev_path: Path, runs: list[PresetRun]) -> np.ndarray:
    """The one-line rule's dev ROUGE-L per example, recomputed from the dev file and checked against the rule
    score each run recorded (so the runs' examples and these line up)."""
    dev = read_examples(dev_path)
    scores = np.asarray(score_examples([e.title for e in dev], [rule_title(e.abstract) for e in dev])["rouge-l"])
    for run in runs:
        recorded = run.metrics["dev_rule"]["rouge-l"]
        if len(run.rouge_l) != len(scores) or abs(recorded - scores.mean()) > 1e-6:
            raise QualityReportError(
                f"{dev_path}: {len(scores)} pairs, the rule scores {scores.mean():.4f}, but run {run.name} has "
                f"{len(run.rouge_l)} dev scores and recorded the rule at {recorded:.4f}: a different dev file")
    return scores


def summarize(runs: list[PresetRun], rule: np.ndarray, n_boot: int, seed: int, targets: Targets = Targets()) -> dict:
    """Mean ± sd of dev ROUGE-L over the runs, the hierarchical intervals of the mean and of the margin over the
    rule, and the bar's verdict (met when both intervals clear it, not met when either lies below it)."""
    scores = np.stack([r.rouge_l for r in runs])
    level = hierarchical_bootstrap(scores, n_boot, seed)
    margin = hierarchical_bootstrap(scores - rule[None, :], n_boot, seed)
    mean, sd = mean_sd([r.metrics["dev"]["rouge-l"] for r in runs])
    margin_mean = mean - float(rule.mean())
    reached = mean >= targets.rouge_l and margin_mean >= targets.above_rule and len(runs) >= targets.min_seeds
    clear = level["ci_low"] >= targets.rouge_l and margin["ci_low"] >= targets.above_rule
    return {"mean": mean, "sd": sd, "level": level, "margin": margin, "margin_mean": margin_mean,
            "rule": float(rule.mean()), "seeds": len(runs), "reached": reached, "clear": clear,
            "n_boot": n_boot, "boot_seed": seed, "targets": targets}


def run_row(run: PresetRun, rule_mean: float) -> list[str]:
    m, minutes = run.metrics, run.minutes
    dev = m["dev"]
    return [run.name, m["seed"], *(f"{dev[k]:.2f}" for k in ("rouge-1", "rouge-2", "rouge-l", "bleu")),
            f"{dev['rouge-l'] - rule_mean:+.2f}", f"{(run.pretrain or {}).get('steps', 0)} + {m['steps']}",
            " + ".join(f"{minutes[k]:.1f}" for k in ("pretrain", "fine-tune", "dev")),
            f"{m['device']}, {m['torch_threads']} thread(s)"]


def mean_row(runs: list[PresetRun], s: dict) -> list[list[str]]:
    """The mean of every score column over the runs (a row after theirs), when there are several."""
    if len(runs) < 2:
        return []
    means = [float(np.mean([r.metrics["dev"][k] for r in runs])) for k in ("rouge-1", "rouge-2", "rouge-l", "bleu")]
    return [["mean", "", *(f"{m:.2f}" for m in means), f"{means[2] - s['rule']:+.2f}", "", "", ""]]


def verdict(s: dict) -> str:
    t = s["targets"]
    bar = f"dev ROUGE-L >= {t.rouge_l:g} and >= {t.above_rule:g} above the rule, mean of >= {t.min_seeds} seeds"
    if s["seeds"] < t.min_seeds:
        return f"The bar ({bar}) cannot be judged yet: {s['seeds']} seed(s)."
    if not s["reached"]:
        return f"The bar ({bar}) is not reached: mean {s['mean']:.2f}, {s['margin_mean']:+.2f} above the rule."
    if s["clear"]:
        return f"The bar ({bar}) is reached, and both intervals clear it."
    return (f"The bar ({bar}) is reached by the means, but an interval reaches below it: what resampling seeds "
            f"and examples allows does not exclude falling short.")


def no_rule_verdict(runs: list[PresetRun], s: dict) -> list[str]:
    """Targets.no_rule_above: judged on these runs when their re-ranker has no rule feature (else: say so)."""
    t = s["targets"]
    if t.no_rule_above is None:
        return []
    with_rule = [r.name for r in runs if "rule" in parse_weights((r.metrics.get("decode") or {}).get("rerank"))]
    target = f"a re-ranker without the rule feature >= {t.no_rule_above:g} above the rule"
    if with_rule:
        return ["", f"The target {target} is not judged here: {', '.join(with_rule)} re-rank with the rule feature."]
    met = ("cannot be judged yet (fewer seeds than the targets ask for)" if s["seeds"] < t.min_seeds
           else "reached" if s["margin_mean"] >= t.no_rule_above else "not reached")
    return ["", f"The target {target}: these runs' re-ranker has no rule feature (`decode.rerank` in each "
                f"metrics.json), so the margin above is its margin: {s['margin_mean']:+.2f} "
                f"[{s['margin']['ci_low']:+.2f}, {s['margin']['ci_high']:+.2f}], {met}."]


def as_run_lines(runs: list[PresetRun], s: dict) -> list[str]:
    """Where Targets.decoding replaced the runs' main decoding: what the main one scored, said beside."""
    swapped = [r for r in runs if r.as_run_rouge_l is not None]
    if not swapped:
        return []
    mean = float(np.mean([r.as_run_rouge_l for r in swapped]))
    weights = {json.dumps(parse_weights(r.metrics["as_run_decode"].get("rerank")), sort_keys=True) for r in swapped}
    return ["", f"The decoding judged here is `{s['targets'].decoding}` of each run's kept checkpoint (scored after "
                f"training by `scripts/rescore_run.py`; metrics.json `decodes.{s['targets'].decoding}`) for "
                f"{', '.join(r.name for r in swapped)}. Those runs' own decoding (metrics.json `dev`, re-ranked with "
                f"{' / '.join(sorted(weights))}) scored a mean dev ROUGE-L of {mean:.2f} on the same checkpoints."]


def form_verdict(runs: list[PresetRun], s: dict) -> list[str]:
    """Targets.form_ratio: each well-formedness rate, mean over the runs, at most form_ratio x the references'."""
    t = s["targets"]
    shapes = [r.metrics["dev_title_shape"]["main"] for r in runs]
    if t.form_ratio is None or not all("latin_cut_short" in shape for shape in shapes):
        return []
    rows, over = [], []
    for key, label, _ in FORM_SHAPES:
        mean = float(np.mean([shape[key] for shape in shapes]))
        reference = shapes[0][f"reference_{key}"]
        ok = mean <= t.form_ratio * reference + 1e-12
        rows.append([label, f"{mean:.1%}", f"{reference:.1%}", f"{t.form_ratio * reference:.1%}", "yes" if ok else "no"])
        over += [] if ok else [label]
    return ["", f"Well-formedness, mean over the runs against at most {t.form_ratio:g} x the references' rate:", "",
            *table(["check", "runs (mean)", "references", "allowed", "within"], rows), "",
            "Every rate is within the target." if not over else f"Over the target: {', '.join(over)}."]


def render(runs: list[PresetRun], s: dict, dev_path: str, report_dir: str = "outputs/reports/quality_preset",
           heldout: list[PresetRun] = ()) -> str:
    level, margin, targets = s["level"], s["margin"], s["targets"]
    lines = [
        "# The quality preset on CSL dev",
        "",
        f"Each run: `{targets.command}` (600 pretraining + 590 fine-tuning steps, beam 16, the n-best "
        "re-ranked; `conf/experiment/quality.yaml`), its small files copied to `runs/<run>/`. Rebuilt by "
        f"`python scripts/quality_report.py {report_dir}`; the rule's per-example scores are "
        f"recomputed from `{dev_path}`. Minutes are wall time as measured, on whatever else the machine ran."
        + (f" Targets declared before the runs in `{targets.source}`." if targets.source else ""),
        "",
        *table(["run", "seed", "R-1", "R-2", "R-L", "BLEU", "R-L minus the rule", "steps (pretrain + fine-tune)",
                "minutes (pretrain + fine-tune + dev)", "device"], [run_row(r, s["rule"]) for r in runs] + mean_row(runs, s)),
        "",
        f"Dev ROUGE-L over {s['seeds']} seed(s): **{s['mean']:.2f}**" + (f" ± {s['sd']:.2f} (sd)" if s["seeds"] > 1
                                                                      else "") +
        f", 95% interval [{level['ci_low']:.2f}, {level['ci_high']:.2f}]; minus the one-line rule ({s['rule']:.2f}): "
        f"**{s['margin_mean']:+.2f}** [{margin['ci_low']:+.2f}, {margin['ci_high']:+.2f}]. Intervals: hierarchical "
        f"bootstrap (seeds drawn with replacement, then examples; {s['n_boot']} resamples, seed {s['boot_seed']}); "
        "with one seed it resamples examples only.",
        "",
        verdict(s),
        *no_rule_verdict(runs, s),
        *as_run_lines(runs, s),
        "",
        "## Do the titles read as titles?",
        "",
        "Dev, the main decoding (`metrics.title_shape`), beside the references' own rates:",
        "",
    ]
    lines += shape_table(runs, "dev")
    lines += form_verdict(runs, s)
    lines += word_rouge_lines(runs)
    lines += heldout_lines([*runs, *heldout], s)
    return "\n".join(lines) + "\n"


def shape_table(runs: list[PresetRun], split: str) -> list[str]:
    """The main decoding's title shapes on `split`, one row per run and the references' row; the
    well-formedness checks (title_form) when every run has them."""
    shapes = [r.metrics[f"{split}_title_shape"]["main"] for r in runs]
    columns = SHAPES + (FORM_SHAPES if all("latin_cut_short" in shape for shape in shapes) else ())
    rows = [[r.name, *(fmt.format(shape[k]) for k, _, fmt in columns)] for r, shape in zip(runs, shapes)]
    rows.append(["references", *(fmt.format(shapes[0][f"reference_{k}"]) for k, _, fmt in columns)])
    return table(["run", *(label for _, label, _ in columns)], rows)


def word_rouge_lines(runs: list[PresetRun]) -> list[str]:
    """Word-level ROUGE on dev (secondary), for runs that recorded it; nothing for older run files."""
    have = [r for r in runs if "main" in r.metrics.get("word_rouge", {}).get("dev", {})]
    if not have:
        return []
    rule = have[0].metrics["word_rouge"]["dev"]["rule"]
    rows = [[r.name, *(f"{r.metrics['word_rouge']['dev']['main'][m]:.2f}" for m in WORD_METRIC_NAMES)] for r in have]
    rows.append(["the one-line rule", *(f"{rule[m]:.2f}" for m in WORD_METRIC_NAMES)])
    return ["", "## Word-level ROUGE (secondary)", "",
            "Dev, the main decoding, ROUGE F1 over jieba words (`metrics.word_rouge`, lower-cased). Secondary, as "
            "Chinese summarization papers report it beside character ROUGE: the bar and every comparison above "
            "use the characters.", "",
            *table(["run", "word R-1", "word R-2", "word R-L"], rows)]


def heldout_lines(runs: list[PresetRun], s: dict) -> list[str]:
    """The held-out split (data.holdout_test: pairs carved from the training file, never used for any
    choice) beside dev, for runs that scored one; nothing otherwise."""
    have = [r for r in runs if r.test_rouge_l is not None and "test" in r.metrics]
    if not have:
        return []
    rows = [[r.name, r.metrics["seed"], f"{r.metrics['dev']['rouge-l']:.2f}",
             *(f"{r.metrics['test'][k]:.2f}" for k in ("rouge-1", "rouge-2", "rouge-l", "bleu")),
             f"{r.metrics['test']['rouge-l'] - r.metrics['test_rule']['rouge-l']:+.2f}" if "test_rule" in r.metrics
             else "n/a"] for r in have]
    mean, sd = mean_sd([r.metrics["test"]["rouge-l"] for r in have])
    level = hierarchical_bootstrap(np.stack([r.test_rouge_l for r in have]), s["n_boot"], s["boot_seed"])
    n_test = have[0].metrics["test"].get("n", len(have[0].test_rouge_l))
    lines = ["", "## The held-out split", "",
             f"{n_test} pairs carved from the end of the training file (`data.holdout_test`), never trained on, "
             "pretrained on or used for any choice; the preset is scored on it once, beside dev "
             "(docs/usage.md, docs/experiments/2026-12-07_quality_heldout.md).", "",
             *table(["run", "seed", "dev R-L", "held-out R-1", "held-out R-2", "held-out R-L", "held-out BLEU",
                     "held-out R-L minus the rule"], rows), "",
             f"Held-out ROUGE-L over {len(have)} seed(s): **{mean:.2f}**"
             + (f" ± {sd:.2f} (sd)" if len(have) > 1 else "")
             + f", 95% interval [{level['ci_low']:.2f}, {level['ci_high']:.2f}] (the same bootstrap as above)."]
    if all("test_title_shape" in r.metrics and "main" in r.metrics["test_title_shape"] for r in have):
        lines += ["", "Held-out titles, the main decoding, beside the references' rates:", "",
                  *shape_table(have, "test")]
    return lines


def build_quality_report(report_dir: str | Path, dev_path: str | Path, n_boot: int = 10000, seed: int = 0) -> Path:
    """Write report_dir/report.md from its run files and the dev file; return its path."""
    report_dir = Path(report_dir)
    targets = load_targets(report_dir)
    runs = load_runs(report_dir, decoding=targets.decoding)
    heldout = load_runs(report_dir, "heldout", required=False, decoding=targets.decoding)
    summary = summarize(runs, rule_rouge_l(Path(dev_path), [*runs, *heldout]), n_boot, seed, targets)
    out = report_dir / "report.md"
    write_text_atomically(out, render(runs, summary, Path(dev_path).as_posix(), report_dir.as_posix(), heldout))
    return out
