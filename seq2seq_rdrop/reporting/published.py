"""The reference's published rows (CLGE csl val, greedy decoding, BERT-wwm-base fine-tuned to its best epoch),
which a report puts beside ours."""
from __future__ import annotations

from ..regularizer_names import PUBLISHED_LABELS

# keyed by the reference's label (regularizer_names.PUBLISHED_LABELS), in its column order R-L / R-1 / R-2 / BLEU
PUBLISHED = {
    "baseline": {"rouge-l": 63.81, "rouge-1": 65.45, "rouge-2": 54.91, "bleu": 45.52},
    "random replacement": {"rouge-l": 64.44, "rouge-1": 66.09, "rouge-2": 55.56, "bleu": 46.10},
    "gradient penalty": {"rouge-l": 65.41, "rouge-1": 67.29, "rouge-2": 56.64, "bleu": 47.37},
    "R-Drop": {"rouge-l": 65.51, "rouge-1": 67.41, "rouge-2": 57.12, "bleu": 47.82},
}


def published_row(reg: str) -> dict | None:
    """The published row of a regularizer with its Δ R-L against the published baseline; None without one."""
    name = PUBLISHED_LABELS.get(reg)
    if name is None:
        return None
    return {"name": name, **PUBLISHED[name],
            "delta": PUBLISHED[name]["rouge-l"] - PUBLISHED["baseline"]["rouge-l"]}
