"""The content selector (seq2seq_rdrop/selector.py): its labels, inputs, training and saved file."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seq2seq_rdrop.metrics import rouge_l
from seq2seq_rdrop.selector import (MAX_SPAN, Lexicon, Selector, best_span, boundary_tags, copy_tags, encode_abstract,
                                    segment, span_log_probs, train_selector)


def test_best_span_finds_the_title_copied_whole():
    abstract = "本文提出一种基于深度学习的图像识别方法,实验表明效果好。"
    start, end, f1 = best_span(abstract, "基于深度学习的图像识别方法")
    assert abstract[start:end] == "基于深度学习的图像识别方法" and f1 == pytest.approx(1.0)


def test_best_span_agrees_with_an_exhaustive_search_by_rouge_l():
    rng = np.random.default_rng(0)
    for _ in range(20):
        abstract = "".join(rng.choice(list("甲乙丙丁戊己"), size=int(rng.integers(5, 25))))
        title = "".join(rng.choice(list("甲乙丙丁戊"), size=int(rng.integers(1, 8))))
        _, _, f1 = best_span(abstract, title, max_span=10)
        exhaustive = max(rouge_l(title, abstract[s:e]) for s, e in itertools.combinations(range(len(abstract) + 1), 2)
                         if e - s <= 10)
        assert f1 == pytest.approx(exhaustive)


def test_copy_tags_mark_the_shared_pieces_and_not_lone_characters():
    abstract = "甲乙丙丁戊己庚"
    tags = copy_tags(abstract, "丙丁戊X己")  # 丙丁戊 shared as a piece; 己 alone
    assert tags == [0, 0, 1, 1, 1, 0, 0]


def test_boundary_tags_cover_every_character_of_the_segmented_text():
    text = "基于深度学习的图像识别方法"
    words = segment(text)
    tags = boundary_tags(words)
    assert "".join(words) == text and len(tags) == len(text)
    assert tags[0] in (0, 3) and tags[-1] in (2, 3)


def test_span_log_probs_allow_only_spans_of_at_most_max_span_characters_ending_after_their_start():
    logits = torch.randn(MAX_SPAN + 5)
    table = span_log_probs(logits, logits.flip(0))
    allowed = torch.isfinite(table)
    s, e = allowed.nonzero().T
    assert bool(((e >= s) & (e - s < MAX_SPAN)).all())
    assert not bool(torch.isfinite(table[3, 2]))  # an end before its start


def toy_pairs(n=24):
    """Abstracts whose title is always the clause after 提出: a position a selector can learn."""
    rng = np.random.default_rng(1)
    words = ["图像", "识别", "网络", "模型", "数据", "算法", "检测", "方法"]
    pairs = []
    for _ in range(n):
        title = "".join(rng.choice(words, size=3))
        noise = "".join(rng.choice(words, size=4))
        pairs.append((f"{noise}。本文提出{title},实验表明{noise}有效。", title))
    return pairs


def test_a_trained_selector_reads_the_same_after_save_and_load(tmp_path):
    pairs = toy_pairs()
    selector = train_selector(pairs, epochs=1, dim=8, hidden=8, log=lambda message: None)
    selector.save(tmp_path / "selector.pt")
    loaded = Selector.load(tmp_path / "selector.pt")
    abstracts = [a for a, _ in pairs[:4]]
    assert selector.spans(abstracts, top=3) == loaded.spans(abstracts, top=3)
    for abstract, spans in zip(abstracts, loaded.spans(abstracts, top=3)):
        assert len(spans) == 3 and all(text in abstract for text, _ in spans)
        assert sum(p for _, p in spans) == pytest.approx(1.0)


def test_the_selector_learns_where_the_title_is():
    pairs = toy_pairs(48)
    selector = train_selector(pairs[:40], epochs=25, dim=16, hidden=16, lr=1e-2, log=lambda message: None)
    top = [spans[0][0] for spans in selector.spans([a for a, _ in pairs[40:]], top=1)]
    assert np.mean([rouge_l(t, p) for (_, t), p in zip(pairs[40:], top)]) > 0.8


def test_the_lexicon_ranks_title_words_above_abstract_words():
    lexicon = Lexicon.build(["图像识别方法"] * 5, ["实验表明图像"] * 5, min_count=1)
    assert lexicon.bucket("方法") > lexicon.bucket("实验") and lexicon.bucket("没见过的词") == 0
    encoded = encode_abstract("实验表明图像识别方法。", {"实": 2}, lexicon)
    assert all(len(v) == len("实验表明图像识别方法。") for v in encoded.values())


def test_a_checkpoint_carries_its_selector_and_sel_reranking_follows_its_spans(tmp_path):
    """save_model_checkpoint writes the attached selector, load_model reads it back, and decoding with
    rerank={sel: 1} puts first the candidate closest to the selector's spans."""
    from conftest import TITLE_ALPHABET, random_abstracts, tiny_title_model

    from seq2seq_rdrop import TitleGenerator
    from seq2seq_rdrop.checkpoints import save_model_checkpoint
    from seq2seq_rdrop.metrics import rouge_l
    from seq2seq_rdrop.models import load_model
    from seq2seq_rdrop.selector import SELECTOR_FILE, attach
    from seq2seq_rdrop.tokenizer import build_tokenizer

    abstracts = random_abstracts(3, seed=5)
    selector = train_selector([(a, a[2:8]) for a in abstracts], epochs=1, dim=8, hidden=8, log=lambda m: None)
    tokenizer = build_tokenizer(["".join(TITLE_ALPHABET)], tmp_path / "tokenizer")
    model = tiny_title_model(tokenizer)
    attach(model, selector)
    path = save_model_checkpoint(tmp_path / "checkpoint", model, tokenizer)
    assert (path / SELECTOR_FILE).is_file() and "content_selector" not in dict(model.named_modules())
    assert load_model(path, tokenizer).content_selector.spans(abstracts) == selector.spans(abstracts)
    api = TitleGenerator.from_pretrained(path, device="cpu", max_source_len=40)
    n_best = api.generate(abstracts, beam_size=4, max_len=10, num_return=4, rerank="none")
    by_sel = api.generate(abstracts, beam_size=4, max_len=10, num_return=4, rerank={"sel": 1})
    for row, reordered, spans in zip(n_best, by_sel, selector.spans(abstracts)):
        closeness = [sum(p * rouge_l(s.lower(), t.lower()) for s, p in spans) for t in row]
        assert sorted(row) == sorted(reordered) and reordered[0] == row[max(range(4), key=closeness.__getitem__)]


def test_a_missing_selector_file_is_refused_in_one_line(tmp_path):
    from conftest import compose_train

    from seq2seq_rdrop.config_checks import validate
    from seq2seq_rdrop.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^selector=.*nope.pt: no such file"):
        validate(compose_train([f"selector={tmp_path / 'nope.pt'}"]))
    with pytest.raises(ConfigError, match=r"^selector_epochs=-1: allowed values are integers from 0 to 100 \(passes"):
        validate(compose_train(["selector_epochs=-1"]))


def test_span_candidates_are_scored_as_the_search_scores_a_title_token_by_token(tmp_path):
    """with_span_candidates' teacher-forced log p of a text equals the sum of the log-probs the decoder's
    incremental path (start, step: what beam search reads) gives its tokens and the end token, so spans and beam
    titles compete on one scale."""
    from conftest import TITLE_ALPHABET, random_abstracts, tiny_title_model

    from seq2seq_rdrop.decoding import with_span_candidates
    from seq2seq_rdrop.tokenizer import build_tokenizer, encode_text

    tokenizer = build_tokenizer(["".join(TITLE_ALPHABET)], tmp_path / "tokenizer")
    model = tiny_title_model(tokenizer, copy=True).eval()
    abstracts = random_abstracts(2, seed=7)
    sources = [encode_text(tokenizer, a, 20) for a in abstracts]
    spans = [[(a[3:9], 0.6), (a[1:4], 0.4)] for a in abstracts]
    scored = with_span_candidates(model, tokenizer, sources, [[] for _ in abstracts], spans, 2,
                                  {"max_len": 8, "length_penalty": 1.0}, "cpu")
    for source, row, hyps in zip(sources, spans, scored):
        assert [h.tokens for h in hyps] == [encode_text(tokenizer, text) for text, _ in row]
        for h in hyps:
            src = model.collate([(model.build_example(source, None)[0], None, None)])["src_ids"]
            with torch.no_grad():
                state, log_probs = model.start(src)
                total = 0.0
                for token in h.tokens + [model.eos_id]:
                    total += float(log_probs[0, token])
                    state, log_probs = model.step(state, torch.tensor([token]))
            assert h.log_prob == pytest.approx(total, abs=1e-4)
            assert h.score == pytest.approx(total / (len(h.tokens) + 1))
    again = with_span_candidates(model, tokenizer, sources, scored, spans, 2, {"max_len": 8}, "cpu")
    assert [len(h) for h in again] == [len(h) for h in scored]  # titles the n-best holds are not added twice
    short = with_span_candidates(model, tokenizer, sources, [[] for _ in abstracts], spans, 2, {"max_len": 4}, "cpu")
    assert [[len(h.tokens) for h in row] for row in short] == [[3], [3]]  # longer than max_len: left out


def test_span_candidates_join_the_n_best_of_a_checkpoint_with_a_selector(tmp_path):
    from conftest import TITLE_ALPHABET, random_abstracts, tiny_title_model

    from seq2seq_rdrop import TitleGenerator
    from seq2seq_rdrop.checkpoints import save_model_checkpoint
    from seq2seq_rdrop.selector import attach
    from seq2seq_rdrop.tokenizer import build_tokenizer

    abstracts = random_abstracts(3, seed=5, lo=12, hi=16)
    selector = train_selector([(a, a[2:6]) for a in abstracts], epochs=1, dim=8, hidden=8, log=lambda m: None)
    tokenizer = build_tokenizer(["".join(TITLE_ALPHABET)], tmp_path / "tokenizer")
    model = tiny_title_model(tokenizer, copy=True)
    attach(model, selector)
    api = TitleGenerator.from_pretrained(save_model_checkpoint(tmp_path / "ckpt", model, tokenizer), device="cpu",
                                         max_source_len=20)
    options = dict(beam_size=2, max_len=40, num_return=2, no_repeat_ngram=0)
    plain = api.generate(abstracts, rerank={"lp": 1}, **options)
    spans = [[t for t, _ in row] for row in selector.spans(abstracts)]
    by_sel = api.generate(abstracts, rerank={"sel": 1}, span_candidates=1, **options)
    for beam_titles, picked, row in zip(plain, by_sel, spans):
        assert picked[0] in beam_titles or picked[0] == row[0]  # a beam title or the selector's top span
    assert any(p[0] == row[0] for p, row in zip(by_sel, spans))  # the top span is closest to the spans somewhere


def test_a_selector_file_holding_an_object_to_build_is_refused_and_nothing_in_it_runs(tmp_path):
    """Files a user passes in are data: a planted pickle in selector.pt is refused in one line, never run."""
    import os
    import pickle

    import pytest

    from seq2seq_rdrop.checkpoints import CheckpointError
    from seq2seq_rdrop.selector import Selector

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    path = tmp_path / "selector.pt"
    path.write_bytes(pickle.dumps({"state": Planted()}))
    with pytest.raises(CheckpointError, match="refused, not a content selector this project wrote"):
        Selector.load(path)
    assert not (tmp_path / "ran").exists()


def test_the_preset_hands_the_held_out_split_to_the_selector_so_neither_model_trains_on_it(tmp_path):
    """run_quality_preset.py passes data.holdout_test/holdout_offset and data.val_size on to train_selector.py,
    and train_selector.py cuts train.tsv as train.py does: its training pairs are train.py's, none held out."""
    from conftest import compose_config, load_script, make_pairs, write_tsv

    from seq2seq_rdrop.splits import load_splits

    preset = load_script("run_quality_preset", "scripts/run_quality_preset.py")
    options = preset.selector_options(["seed=2", "data.val_size=5", "data.holdout_test=7", "data.holdout_offset=4"])
    assert options == ["--seed", "2", "--val-size", "5", "--holdout-test", "7", "--holdout-offset", "4"]
    assert "--holdout-test" not in preset.selector_options(["seed=2", "data.holdout_test=0"])

    data = tmp_path / "csl"
    data.mkdir()
    write_tsv(data / "train.tsv", make_pairs(30, seed=0))
    write_tsv(data / "dev.tsv", make_pairs(3, seed=1))
    script = load_script("train_selector", "scripts/train_selector.py")
    train, val = script.selector_splits(data / "train.tsv", val_size=5, holdout_test=7, holdout_offset=4)
    cfg = compose_config([f"data.dir={data}", "data.holdout_test=7", "data.holdout_offset=4", "data.val_size=5"])
    splits = load_splits(cfg)
    assert [e.title for e in train] == [e.title for e in splits.train]
    assert [e.title for e in val] == [e.title for e in splits.val]
    assert not {e.title for e in train} & {e.title for e in splits.test}


def test_a_run_with_selector_epochs_trains_its_selector_first_without_changing_the_generator(tmp_path):
    """selector_epochs=N: train.py trains a content selector on its training split before the generator, saves
    it as selector.pt (reused on resume) and ships it in the checkpoint; the generator's weights are those of
    the same seed without a selector (the selector trains under its own random state)."""
    from conftest import TINY, train_in_process, write_tiny_csl
    from safetensors.torch import load_file

    from seq2seq_rdrop.selector import SELECTOR_FILE

    data = write_tiny_csl(tmp_path, n_train=24, n_dev=4, n_test=0)
    common = [f"data.dir={data}", "trainer.max_steps=2", "trainer.save_every=0", "data.val_size=4", *TINY,
              "decode.span_candidates=0"]
    with_selector, without = tmp_path / "with", tmp_path / "without"
    train_in_process(with_selector, *common, "selector_epochs=1")
    train_in_process(without, *common, "selector_epochs=0")
    assert (with_selector / "selector.pt").is_file() and not (without / "selector.pt").exists()
    assert (with_selector / "checkpoint" / SELECTOR_FILE).is_file()
    assert not (without / "checkpoint" / SELECTOR_FILE).exists()
    weights = [load_file(run / "checkpoint" / "model.safetensors") for run in (with_selector, without)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    saved = (with_selector / "selector.pt").stat().st_mtime_ns
    train_in_process(with_selector, *common, "selector_epochs=1", "trainer.resume=true", "trainer.max_steps=3")
    assert (with_selector / "selector.pt").stat().st_mtime_ns == saved  # found, not trained again
