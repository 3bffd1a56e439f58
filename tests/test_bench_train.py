"""scripts/bench_train.py: every timed step of a semi-supervised regularizer carries its unlabelled abstracts."""
import json

from conftest import TINY, load_script


def test_a_semi_supervised_step_gets_ratio_times_batch_other_abstracts(data_dir, tmp_path, monkeypatch):
    bench = load_script("bench_train", "scripts/bench_train.py")
    from seq2seq_rdrop.regularizers import SemiSupervised

    seen = []
    call = SemiSupervised.__call__

    def recording(self, model, batch):
        unlabeled = batch.get("unlabeled")
        labelled = set(map(tuple, batch["src_ids"].tolist()))
        seen.append((None if unlabeled is None else unlabeled["src_ids"].size(0),
                     unlabeled is not None and not labelled & set(map(tuple, unlabeled["src_ids"].tolist()))))
        return call(self, model, batch)

    monkeypatch.setattr(SemiSupervised, "__call__", recording)
    out = tmp_path / "bench.json"
    bench.main(["--steps", "2", "--warmup", "0", "--no-memory", "--regularizers", "baseline,rdrop_semi",
                "--out", str(tmp_path / "bench.md"), "--json", str(out), f"data.dir={data_dir}", *TINY])
    assert seen == [(8, True), (8, True)]  # unlabeled_ratio 1 x batch 8 abstracts, none of them the step's pairs
    assert set(json.loads(out.read_text())["seconds_per_step"]) >= {"baseline", "rdrop_semi"}


def test_a_fast_dropout_entry_is_compared_with_the_baseline_on_the_same_dropout():
    bench = load_script("bench_train", "scripts/bench_train.py")
    times = {"baseline": [1.0], "rdrop": [1.8], "baseline_2B_rows": [1.5], "rdrop_passes_twice": [1.2],
             "baseline+fast_dropout": [0.5], "rdrop+fast_dropout": [1.1],
             "baseline_2B_rows+fast_dropout": [1.0], "rdrop_passes_twice+fast_dropout": [0.6]}
    rows = {row[0]: row for row in bench.result_rows(times, {"rdrop": {"peak": 420.4, "delta": 21.6}})}
    assert rows["rdrop"][2:7] == ["1.80x", "<= 2.00x", "yes", "420", "22"]
    assert rows["rdrop+fast_dropout"][2:7] == ["2.20x", "<= 2.00x", "no", "-", "-"]  # 1.1 / 0.5, not 1.1 / 1.0
    assert rows["rdrop / baseline_2B_rows"][2] == "1.20x"
    assert rows["rdrop_passes_twice+fast_dropout / rdrop+fast_dropout"][2] == "0.55x"
    assert rows["baseline: torch / fast dropout"][2] == "2.00x faster"
