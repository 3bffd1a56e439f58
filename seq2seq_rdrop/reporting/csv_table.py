"""comparison.csv: the report's numbers, one row per regularizer, full precision, empty where not computable."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from ..metrics import METRIC_NAMES
from .statistics import is_missing


def csv_record(row: dict, report: dict, diag_names: list[str]) -> dict:
    rec = {"regularizer": row["regularizer"], "n_seeds": row["scores"]["main"]["n"],
           "seeds": ";".join(map(str, row["scores"]["main"]["seeds"])), "split": report["split"]}
    for d in report["decodes"]:
        rec.update({f"{d}_{m}_{s}": row["scores"][d][m][i] for m in METRIC_NAMES for i, s in enumerate(("mean", "sd"))})
        b = row["boot"][d]
        e = b["examples_only"]
        rec.update({f"{d}_delta_rouge-l": b["delta"], f"{d}_ci_low": b["ci_low"], f"{d}_ci_high": b["ci_high"],
                    f"{d}_p_value": b["p_value"], f"{d}_p_holm": b["p_holm"],
                    f"{d}_examples_only_ci_low": e["ci_low"], f"{d}_examples_only_ci_high": e["ci_high"],
                    f"{d}_examples_only_p_value": e["p_value"],
                    f"{d}_per_seed_delta": ";".join(f"{x:.4f}" for x in b["per_seed"]),
                    f"{d}_bootstrap_seeds": ";".join(map(str, b["seeds"])), f"{d}_n_examples": b["n_examples"]})
    cost, eq, pub = row["cost"], row["equal_time"], row["published"] or {}
    rec.update({"seconds_per_step": cost["sps"], "seconds_per_step_source": cost["source"],
                "train_time_ratio": cost["ratio"], "equal_time_steps": eq["steps"],
                "equal_time_rouge-l_mean": eq["mean"], "equal_time_rouge-l_sd": eq["sd"],
                "equal_time_n": eq["n"], "equal_time_flags": ";".join(eq["flags"]),
                "published_name": pub.get("name", "")})
    rec.update({f"published_{m}": pub.get(m) for m in METRIC_NAMES})
    rec["published_delta_rouge-l"] = pub.get("delta")
    for name in diag_names:
        rec[f"diag_{name}_mean"], rec[f"diag_{name}_sd"] = row["diagnostics"].get(name, (math.nan, math.nan))
    rec["missing_or_unfinished"] = "; ".join(f"seed {p.seed}: {p.reason}" for p in report["problems"]
                                             if p.regularizer == row["regularizer"])
    return rec


def _csv_value(x) -> str:
    if is_missing(x):
        return ""  # not computable (one seed, the baseline's own Δ, no file, ...)
    return repr(x) if isinstance(x, float) else str(x)


def write_csv(path: Path, report: dict) -> None:
    diag_names = sorted({k for row in report["rows"] for k in row["diagnostics"]})
    records = [csv_record(row, report, diag_names) for row in report["rows"]]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        if records:
            writer.writerow(list(records[0]))
        for rec in records:
            writer.writerow([_csv_value(v) for v in rec.values()])
