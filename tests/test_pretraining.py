"""Self-supervised pretraining (pretrain.py): the pseudo pairs never carry dev or held-out test
text, each objective builds what it promises, and train.py starts from the pretrained checkpoint."""
import json
import random

from conftest import TINY, make_pairs, pretrain_in_process, run_script, train_in_process, write_tsv
from seq2seq_rdrop.pretraining import (build_pretraining_pairs, gap_sentence_pairs, noisy_title, read_lines,
                                       split_sentences)


def test_split_sentences_keeps_the_sentence_ends():
    assert split_sentences("本文提出一种方法。实验表明有效！结论如下；短。") == ["本文提出一种方法。", "实验表明有效！", "结论如下；"]


def test_noisy_title_deletes_about_the_configured_share_and_adds_nothing():
    rng = random.Random(0)
    title = "基于深度学习的中文科技论文标题自动生成方法研究"
    for _ in range(200):
        noisy = noisy_title(title, rng, delete_ratio=0.2, shuffle_prob=0.0)
        assert len(noisy) == len(title) - round(0.2 * len(title))
        it = iter(title)
        assert all(ch in it for ch in noisy)  # without shuffling: a subsequence of the title


def test_gap_sentence_target_is_removed_from_its_source():
    abstract = "第一句话在这里说明背景。第二句话给出我们的方法细节。第三句话报告实验的结果。"
    pairs = gap_sentence_pairs([abstract], random.Random(0), per_abstract=3)
    assert len(pairs) == 3
    for pair in pairs:
        assert pair.title not in pair.abstract
        assert sorted(split_sentences(pair.abstract) + [pair.title + "。"]) == sorted(split_sentences(abstract))


def test_every_title_denoising_target_is_a_real_title():
    from seq2seq_rdrop.data import Example

    train = [Example(abstract=a, title=t, line=i) for i, (t, a) in enumerate(make_pairs(20))]
    titles = ["题目甲乙丙丁戊", "另一个题目己庚辛"]
    pairs = build_pretraining_pairs(train, titles, seed=0, gap_sentence=False, title_copies=2)
    assert len(pairs) == 2 * (len(titles) + len(train))
    assert {p.title for p in pairs} == set(titles) | {e.title for e in train}


def test_pretrain_never_sees_dev_or_heldout_test_text_and_train_starts_from_it(tmp_path, capsys):
    data = tmp_path / "csl"
    data.mkdir()
    train_pairs, dev_pairs = make_pairs(60, seed=0), make_pairs(8, seed=1)
    write_tsv(data / "train.tsv", train_pairs)
    write_tsv(data / "dev.tsv", dev_pairs)
    # a title-only file that (wrongly) also holds a dev title: pretraining must drop it
    (data / "titles_only.txt").write_text("".join(t + "\n" for t, _ in make_pairs(30, seed=3)) + dev_pairs[0][0] + "\n",
                                          encoding="utf-8")
    out = tmp_path / "pre"
    pretrain_in_process(out, f"data.dir={data}", "data.holdout_test=10", "trainer.max_steps=3", "trainer.save_every=0",
                        "pretrain.heldout=8", *TINY)
    seen = "".join((out / "pretrain_data" / f).read_text(encoding="utf-8") for f in ("train.tsv", "heldout.tsv"))
    for title, abstract in dev_pairs + train_pairs[-10:]:
        assert title not in seen and abstract not in seen
    assert train_pairs[0][0] in seen  # training titles are used
    assert (out / "checkpoint" / "config.json").is_file()
    assert "model.pretrained=" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["pretrain"]["dev_means"] == "held-out pseudo pairs"

    fine = tmp_path / "fine"
    train_in_process(fine, f"data.dir={data}", "model=unilm_copy", f"model.pretrained={out / 'checkpoint'}",
                     "trainer.max_steps=2", "trainer.save_every=0", *TINY)
    metrics = json.loads((fine / "metrics.json").read_text())
    assert metrics["model"]["pretrained"] == str(out / "checkpoint") and metrics["dev"]["n"] == 8
    # the fine-tuned model uses the pretraining vocabulary (it holds the title-only characters)
    assert (fine / "checkpoint" / "vocab.txt").read_text() == (out / "checkpoint" / "vocab.txt").read_text()


def test_missing_titles_file_names_the_option(tmp_path):
    data = tmp_path / "csl"
    data.mkdir()
    write_tsv(data / "train.tsv", make_pairs(30))
    write_tsv(data / "dev.tsv", make_pairs(4, seed=1))
    proc = run_script("pretrain.py", f"data.dir={data}", "pretrain.titles_file=nope.txt", f"hydra.run.dir={tmp_path / 'r'}",
                      *TINY)
    assert proc.returncode != 0 and "pretrain.titles_file=nope.txt" in proc.stderr


def test_read_lines_names_file_and_line_of_bad_bytes(tmp_path):
    path = tmp_path / "titles.txt"
    path.write_bytes("好标题\n".encode() + b"\xff\xfe\n")
    try:
        read_lines(path)
    except ValueError as e:
        assert f"{path}:2" in str(e)
    else:
        raise AssertionError("no error for undecodable bytes")


def test_run_quality_preset_pretrains_then_fine_tunes_by_steps_and_reports_the_minutes(tmp_path):
    """scripts/run_quality_preset.py: pretrain.py for --pretrain-steps, the content selector, then train.py from
    the pretrained checkpoint with the selector attached, all
    with the seed given; it prints the scores, the no-training floors beside them and the minutes. The same
    command again finds both finished and only reports."""
    data = tmp_path / "csl"
    data.mkdir()
    write_tsv(data / "train.tsv", make_pairs(40, seed=0))
    write_tsv(data / "dev.tsv", make_pairs(6, seed=1))
    (data / "titles_only.txt").write_text("".join(t + "\n" for t, _ in make_pairs(20, seed=3)), encoding="utf-8")
    tiny = [o for o in TINY if not o.startswith("model.")] + ["model.hidden_size=32", "model.num_layers=1",
                                                              "model.num_heads=2", "model.intermediate_size=64"]
    pre = [f"--pretrain-override={o}" for o in [f"data.dir={data}", "pretrain.heldout=4", *tiny]]
    run_dir = tmp_path / "q"
    command = ["scripts/run_quality_preset.py", "--pretrain-steps", "2", "--run-dir", str(run_dir), *pre,
               f"data.dir={data}", "trainer.max_steps=2", "trainer.save_every=0", *TINY, "seed=3"]
    proc = run_script(*command)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"]["pretrained"] == str(run_dir / "pretrain" / "checkpoint")
    assert metrics["decode"]["no_repeat_ngram"] == 3  # the preset's decoding
    from omegaconf import OmegaConf

    assert OmegaConf.load(run_dir / "checkpoint" / "train_config.yaml").selector == str(run_dir / "selector.pt")
    assert (run_dir / "checkpoint" / "selector.pt").is_file()
    pretrain_metrics = json.loads((run_dir / "pretrain" / "metrics.json").read_text())
    assert pretrain_metrics["total_steps"] == 2 and metrics["total_steps"] == metrics["steps"] == 2
    assert pretrain_metrics["seed"] == metrics["seed"] == 3
    assert "ROUGE-L" in proc.stdout and "minutes used:" in proc.stdout and "the one-line rule" in proc.stdout
    again = run_script(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is finished" in again.stdout and "command: " not in again.stdout and "ROUGE-L" in again.stdout
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_pretraining_data_leave_out_both_the_held_out_test_and_the_validation_pairs(tmp_path):
    """The preset scored on a held-out split (data.holdout_test=N data.val_size=M for pretrain.py too): the
    pseudo pairs carry no text of the training file's last N + M pairs, and pretrain.exclude_last follows
    data.holdout_test."""
    from conftest import compose_config
    from seq2seq_rdrop.pretraining import prepare

    data = tmp_path / "csl"
    data.mkdir()
    train_pairs = make_pairs(60, seed=0)
    write_tsv(data / "train.tsv", train_pairs)
    write_tsv(data / "dev.tsv", make_pairs(8, seed=1))
    cfg = compose_config([f"data.dir={data}", "data.holdout_test=10", "data.val_size=7", "pretrain.titles_file=null",
                          "pretrain.heldout=8"], config="pretrain")
    assert cfg.pretrain.exclude_last == 10
    out, n_train, n_heldout = prepare(cfg, data, tmp_path / "pretrain_data")
    seen = "".join((out / f).read_text(encoding="utf-8") for f in ("train.tsv", "heldout.tsv"))
    for title, abstract in train_pairs[-17:]:
        assert title not in seen and abstract not in seen
    assert all(title in seen for title, _ in train_pairs[:-17])  # every other training title is used


def test_a_held_out_split_off_the_file_s_end_needs_pretrain_exclude_last_to_cover_it(tmp_path):
    """data.holdout_offset moves the held-out pairs before the file's last ones: pretraining must withhold
    up to them (pretrain.exclude_last >= holdout_test + holdout_offset), and says so when it would not."""
    import pytest

    from conftest import compose_config
    from seq2seq_rdrop.config_checks import ConfigError, validate
    from seq2seq_rdrop.pretraining import prepare

    data = tmp_path / "csl"
    data.mkdir()
    train_pairs = make_pairs(60, seed=0)
    write_tsv(data / "train.tsv", train_pairs)
    write_tsv(data / "dev.tsv", make_pairs(8, seed=1))
    overrides = [f"data.dir={data}", "data.holdout_test=10", "data.holdout_offset=5", "pretrain.titles_file=null",
                 "pretrain.heldout=8"]
    with pytest.raises(ConfigError, match="pretrain.exclude_last=10 would pretrain on held-out pairs.*"
                                          "set pretrain.exclude_last=15"):
        validate(compose_config(overrides, config="pretrain"))
    cfg = compose_config([*overrides, "pretrain.exclude_last=15"], config="pretrain")
    validate(cfg)
    out, _, _ = prepare(cfg, data, tmp_path / "pretrain_data")
    seen = "".join((out / f).read_text(encoding="utf-8") for f in ("train.tsv", "heldout.tsv"))
    for title, abstract in train_pairs[-15:-5]:
        assert title not in seen and abstract not in seen
