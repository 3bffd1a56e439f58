"""How a report writes its numbers: fixed decimals, mean ± sd, intervals and p-values, markdown table rows."""
from __future__ import annotations

from .statistics import is_missing

METRIC_LABELS = {"rouge-1": "R-1", "rouge-2": "R-2", "rouge-l": "R-L", "bleu": "BLEU"}


def fmt(x, spec=".2f", empty="n/a") -> str:
    return empty if is_missing(x) else format(x, spec)


def pm(mean_and_sd) -> str:
    mean, sd = mean_and_sd
    return "n/a" if is_missing(mean) else f"{mean:.2f} ± {fmt(sd)}"


def pm_small(mean_and_sd) -> str:
    """mean ± sd with 4 decimals for measures below 10 (NLLs, KLs, accuracies), 2 above (ROUGE)."""
    mean, sd = mean_and_sd
    if is_missing(mean):
        return "n/a"
    digits = 4 if abs(mean) < 10 else 2
    return f"{mean:.{digits}f} ± " + ("n/a" if is_missing(sd) else f"{sd:.{digits}f}")


def p_text(p, n_boot) -> str:
    return "n/a" if is_missing(p) else (f"< {1 / n_boot:.2g}" if p == 0 else f"{p:.3f}")


def delta_text(boot, n_boot) -> str:
    if is_missing(boot["delta"]):
        return "n/a"
    return (f"{boot['delta']:+.2f} [{boot['ci_low']:+.2f}, {boot['ci_high']:+.2f}], p {p_text(boot['p_value'], n_boot)}"
            f" (Holm {p_text(boot['p_holm'], n_boot)})")


def ci_text(boot) -> str:
    return "n/a" if is_missing(boot["ci_low"]) else f"[{boot['ci_low']:+.2f}, {boot['ci_high']:+.2f}]"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def seeds_text(seeds) -> str:
    return f"{len(seeds)} ({', '.join(map(str, seeds))})" if seeds else "0"


def json_list(values: list[str]) -> str:
    return ", ".join(v.strip('"') for v in values) or "n/a"
