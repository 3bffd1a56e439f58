"""seq2seq_rdrop.splits: the held-out test split (data.holdout_test) and the validation split (data.val_size)
are carved from the end of the training file, disjoint from each other and from what is trained on."""
from conftest import compose_train, write_tiny_csl


def test_holdout_test_and_val_size_carve_disjoint_splits_from_the_training_file_s_end(tmp_path):
    from seq2seq_rdrop.data import read_examples
    from seq2seq_rdrop.splits import load_splits

    data = write_tiny_csl(tmp_path, n_train=48, n_test=0)
    splits = load_splits(compose_train([f"data.dir={data}", "data.holdout_test=6", "data.val_size=5"]))
    every = [e.title for e in read_examples(data / "train.tsv")]
    assert [e.title for e in splits.test] == every[-6:]  # the held-out split: the file's last pairs
    assert [e.title for e in splits.val] == every[-11:-6]  # the validation split just before them
    assert [e.title for e in splits.train] == every[:-11]  # training: everything else
    assert splits.selection[0] == "val"  # choices are made on val; test is only ever scored
