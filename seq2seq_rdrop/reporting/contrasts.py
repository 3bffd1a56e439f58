"""Pairwise contrasts between a report's rows: for each pair (A, B), Δ = A - B of per-example ROUGE-L over the
seeds both have, with the same two-way bootstrap (seeds, then examples) as Δ against the baseline. An order
between two methods needs the interval of their direct contrast, not one significant and one non-significant
result against a third."""
from __future__ import annotations

from .build import finished_runs
from .formatting import ci_text, p_text, table
from .paired import pairwise_contrasts
from .runs import discover_runs


def contrasts_markdown(rows: list[dict], split: str, label: str, n_boot: int) -> str:
    """A markdown table of pairwise_contrasts' rows under a heading naming the split and decoding."""
    body = [[f"{r['a']} − {r['b']}", ", ".join(str(s) for s in r["seeds"]),
             f"{r['delta']:+.2f} {ci_text(r)}", p_text(r["p_value"], n_boot),
             ", ".join(f"{d:+.2f}" for d in r["per_seed"]),
             "yes" if r["ci_low"] > 0 or r["ci_high"] < 0 else "no"] for r in rows]
    head = ["contrast", "seeds", "Δ R-L [95% CI]", "p (two-sided)", "Δ per seed", "interval clears 0"]
    return "\n".join([f"**{split} ROUGE-L, {label}**: Δ = first − second, 95% interval of the two-way bootstrap "
                      f"over seeds and examples ({n_boot} resamples)", "", *table(head, body)])


def report_contrasts(report_dir, names: list[str], split: str, decodes: dict[str, str], n_boot: int = 1000,
                     seed: int = 0) -> str:
    """The markdown of every pairwise contrast among `names`, one table per decoding (decode name -> label)."""
    scored = finished_runs(discover_runs(report_dir), report_dir)
    return "\n\n".join(contrasts_markdown(pairwise_contrasts(scored, names, split, d, n_boot, seed), split, label, n_boot)
                       for d, label in decodes.items())
