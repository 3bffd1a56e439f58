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
