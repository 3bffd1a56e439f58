"""seq2seq_rdrop.splits: the held-out test split (data.holdout_test) and the validation split (data.val_size)
are carved from the end of the training file, disjoint from each other and from what is trained on."""
import pytest

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


def test_holdout_offset_moves_the_held_out_split_off_the_file_s_last_pairs_which_stay_in_training(tmp_path):
    from seq2seq_rdrop.data import read_examples
    from seq2seq_rdrop.splits import carve_holdout, load_splits

    data = write_tiny_csl(tmp_path, n_train=48, n_test=0)
    splits = load_splits(compose_train([f"data.dir={data}", "data.holdout_test=6", "data.holdout_offset=8",
                                        "data.val_size=5"]))
    every = [e.title for e in read_examples(data / "train.tsv")]
    assert [e.title for e in splits.test] == every[-14:-8]
    assert [e.title for e in splits.val] == every[-5:]  # validation: still the file's last pairs
    assert [e.title for e in splits.train] == every[:-14] + every[-8:-5]
    assert carve_holdout(list(range(10)), 3, 2) == ([0, 1, 2, 3, 4, 8, 9], [5, 6, 7])
    with pytest.raises(ValueError, match="data.holdout_test=3 with data.holdout_offset=7 leaves no training"):
        carve_holdout(list(range(10)), 3, 7)
