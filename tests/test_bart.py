"""BART behind the Seq2SeqModel interface (seq2seq_rdrop/models/bart.py): batches, causality, cached
decoding against the uncached reference, checkpoints (ours and plain Hugging Face ones), every
regularizer, and `train.py` on plain pretrained-layout checkpoint directories (BART and BERT/UniLM)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # plain `pytest` on an uninstalled checkout
    sys.path.insert(0, str(REPO_ROOT))

from hydra.utils import instantiate  # noqa: E402

from seq2seq_rdrop.decoding import beam_search  # noqa: E402
from seq2seq_rdrop.models import MODEL_CLASSES, BartSeq2Seq, build_model, load_model, read_family  # noqa: E402
from seq2seq_rdrop.tokenizer import encode_text, save_tokenizer  # noqa: E402

CONF_DIR = REPO_ROOT / "conf"
REGULARIZER_YAMLS = sorted(p.stem for p in (CONF_DIR / "regularizer").glob("*.yaml"))


from conftest import (TINY_COMMON, assert_beam_size_one_equals_greedy, assert_cached_beam_search_equals_uncached,  # noqa: E402
                      compose_train, sources, train_in_process)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_bart(tokenizer, copy=False, seed=0, dropout=0.1, copy_follow=False, copy_coverage=False) -> BartSeq2Seq:
    torch.manual_seed(seed)
    return BartSeq2Seq.from_scratch(tokenizer, hidden_size=32, encoder_layers=2, decoder_layers=2, num_heads=2,
                                    ffn_size=64, dropout=dropout, max_positions=128, copy=copy,
                                    copy_follow=copy_follow, copy_coverage=copy_coverage).eval()


@pytest.fixture
def bart(tiny_tokenizer):
    return tiny_bart(tiny_tokenizer)


# --------------------------------------------------------------------------- batches and the network


def test_registered_and_special_tokens_follow_the_bert_vocabulary(bart, tiny_tokenizer):
    assert MODEL_CLASSES["bart"] is BartSeq2Seq
    assert (bart.pad_id, bart.bos_id, bart.eos_id) == (
        tiny_tokenizer.pad_token_id, tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id)
    assert bart.decoder_start_id == tiny_tokenizer.cls_token_id
    assert bart.vocab_size == len(tiny_tokenizer)
    assert set(bart.special_ids()) == {tiny_tokenizer.pad_token_id, tiny_tokenizer.cls_token_id,
                                       tiny_tokenizer.sep_token_id, tiny_tokenizer.unk_token_id,
                                       tiny_tokenizer.mask_token_id}
    src, tgt_in, tgt_out = bart.build_example([5, 6], [7, 8, 9])
    assert src == [bart.bos_id, 5, 6, bart.eos_id]
    assert tgt_in == [bart.decoder_start_id, 7, 8, 9] and tgt_out == [7, 8, 9, bart.eos_id]
    log_probs = bart(bart.collate([(src, tgt_in, tgt_out)]))
    assert log_probs.shape == (1, 4, bart.vocab_size) and log_probs.dtype == torch.float32
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, 4), atol=1e-5)


def test_decoder_position_does_not_depend_on_later_title_tokens(bart):
    a = bart.collate([bart.build_example([5, 6, 7, 8], [9, 10, 11, 12])])
    b = {k: v.clone() for k, v in a.items()}
    b["tgt_in"][0, 3] = 13  # tgt_in = [start, 9, 10, 11, 12]: change title token 11
    out_a, out_b = bart(a), bart(b)
    assert torch.allclose(out_a[0, :3], out_b[0, :3], atol=1e-6)
    assert not torch.allclose(out_a[0, 3], out_b[0, 3])


def test_padding_does_not_change_predictions(bart):
    alone = bart(bart.collate([bart.build_example([5, 6, 7], [8, 9])]))
    padded = bart(bart.collate([bart.build_example([5, 6, 7], [8, 9]),
                                bart.build_example([5, 6, 7, 10, 11, 12], [8, 9, 10, 11])]))
    assert torch.allclose(alone[0], padded[0, :3], atol=1e-5)


def test_too_long_abstract_names_the_setting(bart):
    batch = bart.collate([bart.build_example(list(range(5, 5 + 130)), [8, 9])])
    with pytest.raises(ValueError, match="max_source_len"):
        bart(batch)


def test_input_embeddings_see_encoder_and_decoder_and_tie_the_lm_head(bart):
    calls = []
    handle = bart.input_embeddings().register_forward_hook(lambda m, i, out: calls.append(tuple(out.shape)))
    try:
        bart(bart.collate([bart.build_example([5, 6, 7], [8, 9])]))
    finally:
        handle.remove()
    assert calls == [(1, 5, 32), (1, 3, 32)]  # abstract, then title
    assert bart.bart.lm_head.weight is bart.input_embeddings().weight


def test_set_dropout_reaches_every_layer(bart):
    bart.set_dropout(0.3)
    rates = [m.dropout for m in bart.modules() if m is not bart and isinstance(getattr(m, "dropout", None), float)]
    assert rates and all(r == 0.3 for r in rates)
    bart.set_dropout(0.0)
    bart.train()
    batch = bart.collate([bart.build_example([5, 6, 7], [8, 9])])
    assert torch.equal(bart(batch), bart(batch))  # no dropout left anywhere


# --------------------------------------------------------------------------- decoding


def test_cached_steps_equal_the_full_forward(bart):
    batch = bart.collate([bart.build_example([5, 6, 7], [8, 9, 10]), bart.build_example([5, 6, 7, 11, 12], [8, 9, 13])])
    full = bart(batch)
    with torch.no_grad():
        state, log_probs = bart.start(batch["src_ids"])
        assert torch.allclose(log_probs, full[:, 0], atol=1e-5)
        for j in range(1, 4):  # tgt_in = [start, 8, 9, 10]: feeding token j gives output position j
            state, log_probs = bart.step(state, batch["tgt_in"][:, j])
            assert torch.allclose(log_probs, full[:, j], atol=1e-5)


@pytest.mark.parametrize("copy", [False, True, "follow"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_beam_search_equals_uncached(tiny_tokenizer, beam_size, copy):
    model = tiny_bart(tiny_tokenizer, copy=bool(copy), copy_follow=copy == "follow", copy_coverage=copy == "follow")
    if copy == "follow":  # bonuses that depend on the state
        for bonus in (model.copy_head.follow, model.copy_head.coverage):
            torch.nn.init.normal_(bonus.weight, std=0.5)
    src = sources(model)
    assert_cached_beam_search_equals_uncached(model, src, beam_size)


def test_beam_size_one_equals_greedy(bart):
    assert_beam_size_one_equals_greedy(bart, max_len=10)


@torch.no_grad()
def test_reorder_across_abstracts_moves_the_cross_attention_cache_too(bart):
    """A reorder that sends rows to other abstracts (not what beam search does) stays exact."""
    src = sources(bart)
    index = torch.tensor([2, 0, 1, 1])
    state, _ = bart.start(src)
    state = state.reorder(index)
    tokens = torch.tensor([8, 9, 10, 11])
    state, log_probs = bart.step(state, tokens)
    reference = bart(bart.decoder_batch(src.index_select(0, index), tokens[:, None]))[:, 1]
    assert torch.allclose(log_probs, reference, atol=1e-5)


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("copy", [False, True, "follow"])
def test_save_and_load_round_trip(tiny_tokenizer, tmp_path, copy):
    model = tiny_bart(tiny_tokenizer, copy=bool(copy), copy_follow=copy == "follow")
    if copy:  # a copy head that is not at its initial values
        torch.nn.init.normal_(model.copy_head.gate.weight)
    if copy == "follow":
        torch.nn.init.normal_(model.copy_head.follow.weight)
    model.save_pretrained(tmp_path)
    assert read_family(tmp_path) == "bart"
    assert (tmp_path / "extra_modules.safetensors").is_file() == bool(copy)
    again = load_model(tmp_path, tiny_tokenizer).eval()
    assert isinstance(again, BartSeq2Seq) and (again.copy_head is not None) == bool(copy)
    assert copy != "follow" or again.copy_head.follow is not None
    assert again.decoder_start_id == model.decoder_start_id
    batch = model.collate([model.build_example([5, 6, 7], [8, 9])])
    assert torch.allclose(again(batch), model(batch), atol=1e-6)


@pytest.fixture
def hf_bart_dir(tiny_tokenizer, tmp_path):
    """A plain Hugging Face BART checkpoint (no seq2seq_rdrop key) with its tokenizer, laid out like
    fnlp/bart-base-chinese: BertTokenizer, decoder started with [SEP]."""
    from transformers import BartConfig, BartForConditionalGeneration

    tok = tiny_tokenizer
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                        decoder_start_token_id=tok.sep_token_id, forced_eos_token_id=tok.sep_token_id)
    out = tmp_path / "hf_bart"
    BartForConditionalGeneration(config).save_pretrained(str(out))
    save_tokenizer(tok, out)
    return out


def test_plain_hf_bart_checkpoint_loads_by_path(hf_bart_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert read_family(hf_bart_dir) == "bart"
    model = load_model(hf_bart_dir)
    assert isinstance(model, BartSeq2Seq) and model.copy_head is None
    assert model.decoder_start_id == model.eos_id  # the checkpoint's own decoder start
    assert model.build_example([5], [6])[1] == [model.eos_id, 6]
    tuned = BartSeq2Seq.from_pretrained(hf_bart_dir, dropout=0.3, copy=True)  # what model.dropout/model.copy set
    assert tuned.bart.config.dropout == 0.3 and tuned.bart.model.encoder.layers[0].self_attn.dropout == 0.3
    assert tuned.copy_head is not None


@pytest.mark.parametrize("name", REGULARIZER_YAMLS)
def test_pretrained_bart_trains_with_every_regularizer_and_decodes(hf_bart_dir, name):
    from seq2seq_rdrop.tokenizer import load_tokenizer

    cfg = compose_train(["model=bart", f"model.pretrained={hf_bart_dir}", f"regularizer={name}"])
    tokenizer = load_tokenizer(cfg.model.pretrained)
    model = build_model(cfg.model, tokenizer)
    assert isinstance(model, BartSeq2Seq)
    reg = instantiate(cfg.regularizer)
    if reg.model_dropout is not None:
        model.set_dropout(reg.model_dropout)
    model.train()
    from conftest import make_pairs
    pairs = make_pairs(6, seed=3)
    batch = model.collate([model.build_example(encode_text(tokenizer, a, 40), encode_text(tokenizer, t, 10))
                           for t, a in pairs])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    for _ in range(2):
        loss, parts = reg(model, batch)
        assert torch.isfinite(loss) and "ce" in parts
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if name == "grad_penalty":
        assert parts["penalty"] > 0
    if name.startswith("rdrop"):
        assert parts["kl"] > 0
    assert not torch.equal(before, model.input_embeddings().weight)
    model.eval()
    hyps = beam_search(model, batch["src_ids"], beam_size=2, max_len=5)
    assert len(hyps) == len(pairs) and all(1 <= len(h[0].tokens) <= 5 for h in hyps)


# --------------------------------------------------------------------------- train.py end to end


def test_train_py_unilm_from_a_plain_bert_checkpoint(tiny_tokenizer, data_dir, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    ckpt = tmp_path / "hf_bert"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tiny_tokenizer.pad_token_id)
    BertForMaskedLM(config).save_pretrained(str(ckpt))
    save_tokenizer(tiny_tokenizer, ckpt)
    out = tmp_path / "run"
    train_in_process(out, f"data.dir={data_dir}", "model=unilm", f"model.pretrained={ckpt}", *TINY_COMMON)
    assert (out / "metrics.json").is_file() and read_family(out / "checkpoint") == "unilm"
    assert len((out / "predictions_dev.tsv").read_text(encoding="utf-8").splitlines()) == 4


def test_train_in_process_bart_small_and_pretrained(hf_bart_dir, data_dir, tmp_path):
    """train() as train.py calls it, for model=bart_small (tiny) and model=bart model.pretrained=DIR."""
    from seq2seq_rdrop.training import train

    small = ["model=bart_small", "model.hidden_size=32", "model.encoder_layers=1", "model.decoder_layers=1",
             "model.num_heads=2", "model.ffn_size=64", "regularizer=rdrop"]
    for name, overrides in (("small", small), ("pretrained", ["model=bart", f"model.pretrained={hf_bart_dir}"])):
        cfg = compose_train([f"data.dir={data_dir}", *TINY_COMMON, *overrides])
        metrics = train(cfg, tmp_path / name)
        assert metrics["model"]["family"] == "bart" and metrics["dev"]["n"] == 4
        assert read_family(tmp_path / name / "checkpoint") == "bart"
        again = load_model(tmp_path / name / "checkpoint")
        assert isinstance(again, BartSeq2Seq)
