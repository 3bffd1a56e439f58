"""Reading a sweep's run directories: which runs there are, their identity (regularizer, seed), their
metrics.json (or, for a run cut off in its final decodings, its eval_log.csv), their per-example scores, and the
grid of (regularizer, seed) the sweep should have produced."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import one_line
from ..metrics import METRIC_NAMES, score_examples
from ..regularizer_names import order_regularizers

FINAL = "final"  # decodings of the final weights when a validation split chose the kept ones: final, final_<name>
FROM_EVAL_LOG = "from_eval_log"  # the key that marks metrics read back from eval_log.csv
RUN_DIR_NAME = re.compile(r"^(?P<regularizer>.+)_seed(?P<seed>-?\d+)$")


class CompareError(RuntimeError):
    """Input that makes the comparison meaningless (e.g. per-example scores that do not line up)."""


@dataclass
class Run:
    path: Path
    regularizer: str
    seed: int | str | None
    metrics: dict | None  # None: the run never wrote metrics.json
    cache: dict = field(default_factory=dict, repr=False)


def norm_seed(value):
    """Seeds come as ints from JSON/YAML and as strings from names and overrides; unify them."""
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return str(value).strip()


def seed_key(seed):
    """Sort key of seeds: integers in order, then named seeds, then none."""
    if seed is None:
        return (2, 0, "")
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def _natural_key(path: Path):
    # Hydra numbers jobs 0,1,...,10,11: sort "10" after "9", not after "1".
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def damaged(path: Path, what: str) -> CompareError:
    """The one-line error for a run file that cannot be read as what it should be."""
    return CompareError(f"{path}: {what}; the file is damaged (rerun its run, or remove the run's directory)")


def load_yaml(path: Path):
    # Plain YAML, not OmegaConf: multirun.yaml holds unresolved ${now:...} interpolations.
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise damaged(path, f"not readable YAML ({one_line(e)})") from None


def load_json(path: Path) -> dict:
    """A run file's JSON object (metrics.json, example_scores.json, diagnostics.json, bench_train.json)."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise damaged(path, f"not valid JSON ({one_line(e)})") from None
    if not isinstance(content, dict):
        raise damaged(path, f"a JSON {type(content).__name__}, not the object it should hold")
    return content


def read_csv_rows(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise damaged(path, f"not readable CSV ({one_line(e)})") from None


def relative(path: Path, root: Path) -> str:
    """path relative to root, in POSIX form ('.' for root itself)."""
    return path.resolve().relative_to(root.resolve()).as_posix() or "."


# --------------------------------------------------------------------------- finding runs


def _simple_overrides(lines) -> dict[str, str]:
    """`regularizer=rdrop` style job overrides -> {key: value} (leading +/~ dropped)."""
    out = {}
    for line in lines or []:
        key, sep, value = str(line).partition("=")
        if sep:
            out[key.lstrip("+~").strip()] = value.strip()
    return out


def _run_identity(run_dir: Path, metrics: dict | None):
    """(regularizer, seed) of a run: from Hydra's `regularizer=`/`seed=` overrides, else from a
    `<regularizer>_seed<S>` directory name (the sweep driver's), else from the config or metrics.json.
    The first two are the names the sweep was launched with (e.g. random_replace_vocab)."""
    overrides = {}
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        overrides = _simple_overrides(load_yaml(run_dir / ".hydra" / "overrides.yaml"))
    reg, seed = overrides.get("regularizer"), overrides.get("seed")
    named = RUN_DIR_NAME.match(run_dir.name)
    if named:
        reg = reg if reg is not None else named["regularizer"]
        seed = seed if seed is not None else named["seed"]
    config = load_yaml(run_dir / ".hydra" / "config.yaml") if (run_dir / ".hydra" / "config.yaml").is_file() else None
    for source in (config or {}, metrics or {}):
        r = source.get("regularizer")
        if reg is None and r is not None:
            reg = r.get("name") if isinstance(r, dict) else r
        if seed is None:
            seed = source.get("seed")
    return (str(reg) if reg is not None else "unknown"), norm_seed(seed)


def _candidate_run_dirs(root: Path) -> set[Path]:
    """Directories that are (or were meant to be) runs. A report directory (root/runs exists): every directory
    directly under root/runs (so an unfinished run there is still seen), nothing elsewhere (a sub-report
    such as compare_converged/horizon/ has runs of its own). Any other tree: a Hydra job dir, a dir with
    metrics.json."""
    if (root / "runs").is_dir():
        return {p for p in (root / "runs").iterdir() if p.is_dir()}
    found = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return found | {p.parent for p in root.rglob("metrics.json")}


def discover_runs(root: Path) -> list[Run]:
    """Every run directory under root, at any depth, in natural path order."""
    runs: list[Run] = []
    accepted: list[Path] = []
    # Shallowest first, so a metrics.json nested inside a run directory (a checkpoint folder,
    # a diagnostics folder) is not mistaken for a second run.
    for d in sorted(_candidate_run_dirs(root), key=lambda p: (len(p.parts), _natural_key(p))):
        if any(a in d.parents for a in accepted):
            continue
        accepted.append(d)
        metrics = load_json(d / "metrics.json") if (d / "metrics.json").is_file() else metrics_from_eval_log(d)
        reg, seed = _run_identity(d, metrics)
        runs.append(Run(path=d, regularizer=reg, seed=seed, metrics=metrics))
    runs.sort(key=lambda r: _natural_key(r.path))
    return runs


def metrics_from_eval_log(run_dir: Path) -> dict | None:
    """The dev scores of a run stopped after its last optimizer step but before metrics.json (during
    its final decodings): with trainer.keep=last the final weights were scored on dev with the main
    decoding at step trainer.max_steps, and eval_log.csv holds that row. None unless all of this is
    so (a config_resolved.yaml or .hydra/config.yaml says keep=last and max_steps; eval_log.csv
    reaches it). The scores carry 2 decimals; the run is listed as cut off (problems.CUT_OFF)."""
    config_file = next((f for f in (run_dir / "config_resolved.yaml", run_dir / ".hydra" / "config.yaml")
                        if f.is_file()), None)
    config = (load_yaml(config_file) if config_file else None) or {}
    trainer = config.get("trainer") or {}
    if trainer.get("keep") != "last" or not trainer.get("max_steps") or not (run_dir / "eval_log.csv").is_file():
        return None
    log_file = run_dir / "eval_log.csv"
    try:
        last_rows = {int(float(r["step"])): r for r in read_csv_rows(log_file)}
        final = last_rows.get(int(trainer["max_steps"]))
        if final is None:
            return None
        dev = {**{m: float(final[m]) for m in METRIC_NAMES}, "n": int(final["n"])}
    except (KeyError, ValueError, TypeError) as e:  # a cut row: None where a number should be
        raise damaged(log_file, f"a row without its numbers ({one_line(e)})") from None
    return {"dev": dev,
            "total_steps": int(trainer["max_steps"]), "kept": "last", FROM_EVAL_LOG: True,
            "decode": config.get("decode")}


def _sweep_values(override_strings, key: str):
    """Values a Hydra sweep gives `key` (comma list, range(), or one value); None when `key` is not
    overridden or cannot be expanded (glob(), whose options live in a config directory we lack)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for o in OverridesParser.create().parse_overrides([str(s) for s in override_strings]):
        if o.key_or_group != key or o.is_delete():
            continue
        if not o.is_sweep_override():
            return [o.get_value_element_as_str()]
        try:
            return [str(v) for v in o.sweep_string_iterator()]
        except Exception:  # glob() and friends
            return None
    return None


def expected_grid(root: Path, runs: list[Run]) -> tuple[list[str], list, list[str]]:
    """(regularizers, seeds, notes) the sweep should have produced: multirun.yaml's sweep when there is
    one, else (regularizers found) × (seeds found), so a seed one regularizer has and another lacks
    still shows up as missing."""
    regs = {r.regularizer for r in runs}
    seeds = {r.seed for r in runs if r.seed is not None}
    notes = []
    if (root / "multirun.yaml").is_file():
        doc = load_yaml(root / "multirun.yaml") or {}
        task = ((doc.get("hydra") or {}).get("overrides") or {}).get("task") or []
        swept_regs, swept_seeds = _sweep_values(task, "regularizer"), _sweep_values(task, "seed")
        regs |= set(swept_regs or [])
        seeds |= {norm_seed(s) for s in swept_seeds or []}
        if swept_regs is None or swept_seeds is None:
            notes.append("multirun.yaml does not list both the regularizers and the seeds; the grid "
                          "uses those found as well.")
    else:
        notes.append("The expected grid is (regularizers found) × (seeds found).")
    return order_regularizers(regs), sorted(seeds, key=seed_key), notes


def load_bench(root: Path) -> dict | None:
    path = root / "bench_train.json"
    return load_json(path) if path.is_file() else None


COST_SOURCES_FILE = "cost_sources.yaml"  # hardware label -> a bench_train.json elsewhere (one home per figure)


def load_cost_sources(root: Path) -> dict[str, dict]:
    """REPORT_DIR/cost_sources.yaml: {hardware label: path of a bench_train.json, relative to the report
    directory}, read as plain data; {} without the file. Each named file must exist and name its baseline."""
    path = root / COST_SOURCES_FILE
    if not path.is_file():
        return {}
    given = load_yaml(path)
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise CompareError(f"{path}: expected a mapping of hardware label -> bench_train.json path")
    sources = {}
    for label, relative_path in given.items():
        bench_path = (root / relative_path).resolve()
        if not bench_path.is_file():
            raise CompareError(f"{path}: {label}: {relative_path}: no such file")
        bench = load_json(bench_path)
        if "baseline" not in (bench.get("seconds_per_step") or {}):
            raise CompareError(f"{bench_path}: no baseline in seconds_per_step (needed for the ratios)")
        sources[str(label)] = {**bench, "path": relative_path}
    return sources


PROTOCOL_FILE = "protocol.yaml"  # a declared protocol, frozen into the report directory by its sweep


def load_protocol(root: Path) -> dict | None:
    """REPORT_DIR/protocol.yaml (conf/protocol/<experiment>.yaml as declared before the runs), or None."""
    path = root / PROTOCOL_FILE
    if not path.is_file():
        return None
    protocol = load_yaml(path)
    missing = [k for k in ("primary_endpoint", "secondary_endpoints", "family", "reference_row")
               if not isinstance(protocol, dict) or k not in protocol]
    if missing:
        raise CompareError(f"{path}: not a declared protocol (missing {', '.join(missing)})")
    return protocol


def load_notes(root: Path) -> str | None:
    path = root / "notes.md"
    return path.read_text(encoding="utf-8").strip("\n") if path.is_file() else None


# --------------------------------------------------------------------------- scores of a run


def read_predictions(path: Path) -> tuple[list[str], list[str]]:
    """`reference<TAB>prediction` per line -> (references, predictions)."""
    refs, preds = [], []
    with open(path, encoding="utf-8") as f:
        # Split on "\n" only: str.splitlines() would also break on U+2028 etc. inside text.
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline, not an example
    for line in lines:
        ref, _, pred = line.rstrip("\r").partition("\t")  # no tab: empty prediction
        refs.append(ref)
        preds.append(pred)
    return refs, preds


def _scores_from_predictions(run: Run, split: str) -> dict:
    """{decode: {metric: [per-example]}} recomputed from predictions_<split>[_<decode>].tsv."""
    out = {}
    for path in sorted(run.path.glob(f"predictions_{split}*.tsv")):
        decode = path.stem[len(f"predictions_{split}"):].lstrip("_") or "main"
        refs, preds = read_predictions(path)
        out[decode] = {**score_examples(refs, preds), "references": refs}
    return out


def example_scores(run: Run, split: str) -> dict:
    """{decode: {metric: np.ndarray}} of one run: example_scores.json when present, else recomputed
    from its prediction files (then also "references", to check the pairing)."""
    if ("examples", split) not in run.cache:
        if (run.path / "example_scores.json").is_file():
            by_decode = load_json(run.path / "example_scores.json").get(split, {})
        else:
            by_decode = _scores_from_predictions(run, split)
        run.cache[("examples", split)] = {
            decode: {k: (v if k == "references" else np.asarray(v, dtype=float)) for k, v in scores.items()}
            for decode, scores in by_decode.items()}
    return run.cache[("examples", split)]


def split_scores(metrics: dict, split: str, decode: str) -> dict | None:
    """Corpus scores of one split and decoding from metrics.json, None when absent. Decodings named final and
    final_<name> are the final weights' (metrics["final"], runs whose kept step was chosen on validation)."""
    if decode == FINAL or decode.startswith(FINAL + "_"):
        metrics, decode = metrics.get(FINAL) or {}, decode[len(FINAL) + 1:] or "main"
    scores = metrics.get(split) if decode == "main" else (metrics.get("decodes", {}).get(decode) or {}).get(split)
    return scores if isinstance(scores, dict) else None


def decodings_of(metrics: dict) -> set[str]:
    """The decoding names a run's metrics.json holds besides main: trainer.final_decodes entries, and the final
    weights' (final, final_<name>) when a validation split chose the kept step."""
    names = set(metrics.get("decodes", {}))
    if isinstance(metrics.get(FINAL), dict):
        names |= {FINAL} | {f"{FINAL}_{d}" for d in metrics[FINAL].get("decodes", {})}
    return names


DIAGNOSTICS_FILES = {  # file in a run directory -> suffix of its measures' names in the report
    "diagnostics.json": "",  # at the run's own dropout rates
    "diagnostics_dropout0.1.json": " @ dropout 0.1",  # every checkpoint at one common rate (like for like)
}


def diagnostic_measures(run: Run) -> dict[str, float]:
    """runs[0]["measures"] of the run's diagnostics files (numbers only), and the hidden dropout they were
    measured at, each name with its file's suffix; {} without the files."""
    out = {}
    for file, suffix in DIAGNOSTICS_FILES.items():
        if not (run.path / file).is_file():
            continue
        first = (load_json(run.path / file).get("runs") or [{}])[0]
        measures = {**(first.get("measures") or {}), "dropout_hidden": (first.get("dropout") or {}).get("hidden")}
        out.update({k + suffix: float(v) for k, v in measures.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return out
