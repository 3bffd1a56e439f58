"""What the unlabelled KL does to the titles (issue 18): length, copying and repetition of dev predictions.

For each run directory given (a run's full directory with predictions_dev*.tsv, e.g. under
outputs/sweeps/semi_supervised/), per decoding: the mean title length in characters (and the references'),
the share of the title's character bigrams that occur in its abstract, and how many titles repeat
themselves (fewer than 70% of their character bigrams distinct). Run from the repository root:

    python docs/experiments/2026-11-26_semi_supervised_titles.py outputs/sweeps/semi_supervised/{baseline,rdrop,rdrop_semi}_seed0
"""
import sys
from pathlib import Path

from seq2seq_rdrop.data import read_examples, resolve_data_dir


def bigrams(text: str) -> list[str]:
    return [text[i:i + 2] for i in range(len(text) - 1)]


def describe(predictions: Path, abstracts: list[str]) -> str:
    rows = [line.rstrip("\n").split("\t") for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(abstracts), f"{predictions}: {len(rows)} rows for {len(abstracts)} dev pairs"
    titles = [row[1] if len(row) > 1 else "" for row in rows]
    copied = [sum(b in abstract for b in bigrams(t)) / len(bigrams(t))
              for t, abstract in zip(titles, abstracts) if len(t) > 1]
    repetitive = sum(len(set(bigrams(t))) < 0.7 * len(bigrams(t)) for t in titles if len(t) > 1)
    references = [len(row[0]) for row in rows]
    return (f"{sum(map(len, titles)) / len(titles):5.1f} | {sum(references) / len(references):5.1f} | "
            f"{sum(copied) / len(copied):.3f} | {repetitive}")


def main(run_dirs: list[str]) -> None:
    dev = read_examples(resolve_data_dir(None) / "dev.tsv")
    abstracts = [example.abstract for example in dev]
    print("| run | decoding | title chars | reference chars | bigrams copied from the abstract | repetitive titles |")
    print("|---|---|---|---|---|---|")
    for run in map(Path, run_dirs):
        for predictions in sorted(run.glob("predictions_dev*.tsv")):
            decoding = predictions.stem.removeprefix("predictions_dev").lstrip("_") or "main"
            print(f"| {run.name} | {decoding} | {describe(predictions, abstracts)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
