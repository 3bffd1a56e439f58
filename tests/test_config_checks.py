"""Options are checked before anything is read or written (issue 16, points 2, 5, 6): every config in
conf/ passes; each out-of-range option is refused in one line naming it and its allowed values, before the
run directory exists; train.py and pretrain.py report every failure as one `error:` line."""
from dataclasses import dataclass

import pytest

from conftest import REPO, TINY, compose_config, make_pairs, run_script, write_tsv
from seq2seq_rdrop.config_checks import ConfigError, validate
from seq2seq_rdrop.option_schema import choice, number
from seq2seq_rdrop.regularizers import Regularizer


compose_cfg = compose_config


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pretrained")  # validate only checks that it is a directory


def every_config(pretrained):
    """(config name, overrides) for every preset, regularizer and model group in conf/."""
    yield "train", []
    yield "pretrain", []
    for experiment in ("quality", "compare", "compare_strong", "semi_supervised"):
        yield "train", [f"+experiment={experiment}", f"model.pretrained={pretrained}"] \
            if experiment in ("compare_strong", "semi_supervised") else [f"+experiment={experiment}"]
    for regularizer in sorted(p.stem for p in (REPO / "conf" / "regularizer").glob("*.yaml")):
        # a semi-supervised regularizer needs unlabelled abstracts (tests/test_semi_supervised.py)
        extra = ["data.unlabeled_file=train.tsv"] if "unlabeled_ratio" in \
            (REPO / "conf" / "regularizer" / f"{regularizer}.yaml").read_text() else []
        yield "train", [f"regularizer={regularizer}", *extra]
        yield "pretrain", [f"regularizer={regularizer}", *extra]
        yield "train", ["+experiment=quality", f"regularizer={regularizer}", *extra]
    for model in sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml")):
        extra = [f"model.pretrained={pretrained}"] if model in ("unilm", "bart") else []
        yield "train", [f"model={model}", *extra]
    yield "train", ["model=unilm_copy", f"model.pretrained={pretrained}"]  # fine-tuning a pretrain.py checkpoint
    yield "train", TINY


def test_every_config_in_conf_passes_and_names_the_callback(pretrained_dir):
    configs = list(every_config(pretrained_dir))
    assert len(configs) > 20
    for name, overrides in configs:
        validate(compose_cfg(overrides, name))
    for name in ("train", "pretrain"):
        cfg = compose_cfg([], name, hydra=True)
        assert cfg.hydra.callbacks.validate._target_ == "seq2seq_rdrop.cli.ValidateConfig"


@dataclass(kw_only=True, eq=False)
class Scaled(Regularizer):
    """A regularizer written for this test only: its module and a config block are all it needs."""

    scale: float = number(1.0, 0.0, note=" (the scale)")
    mode: str = choice("plain", ("plain", "fancy"))


def test_a_regularizer_block_is_checked_against_the_fields_of_its_class():
    cfg = compose_cfg(["regularizer=baseline"])
    block = {"_target_": f"{__name__}.Scaled", "name": "scaled", "scale": 2.0, "mode": "fancy",
             "inner": {"_target_": "seq2seq_rdrop.regularizers.RDrop", "alpha": 1.0}}
    cfg.regularizer = block
    validate(cfg)
    for key, value, message in [
        ("scale", -1.0, "regularizer.scale=-1.0: allowed values are numbers >= 0 (the scale)"),
        ("mode", "odd", "regularizer.mode='odd': allowed values are plain, fancy"),
        ("label_smoothing", 1.0, "regularizer.label_smoothing=1.0: allowed values are numbers in [0, 1)"),
        ("alpha", 4.0, "regularizer.alpha: unknown option of test_config_checks.Scaled; known: name, label_smoothing, "
                       "model_dropout, model_attention_dropout, inner, scale, mode"),
    ]:
        cfg.regularizer = {**block, key: value}
        with pytest.raises(ConfigError) as info:
            validate(cfg)
        assert str(info.value) == message
    with pytest.raises(ValueError, match=r"^regularizer.scale=-1: allowed values are numbers >= 0 \(the scale\)$"):
        Scaled(scale=-1)  # the class checks its fields alike when it is built
    assert Scaled(scale=3).settings() == {"name": "Scaled", "label_smoothing": 0.0, "model_dropout": None,
                                          "model_attention_dropout": None, "scale": 3, "mode": "plain"}


def test_a_fresh_models_sizes_are_its_from_scratch_arguments():
    from seq2seq_rdrop.models import MODEL_CLASSES, BartSeq2Seq, UniLM

    assert tuple(MODEL_CLASSES) == ("unilm", "bart")
    assert UniLM.size_keys() == ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions")
    assert BartSeq2Seq.size_keys() == ("hidden_size", "encoder_layers", "decoder_layers", "num_heads", "ffn_size",
                                       "max_positions")


def test_the_decoding_options_mirror_the_code():
    from transformers import GenerationConfig

    from seq2seq_rdrop.decode_options import HF_DECODE_FIELDS, STRATEGIES
    from seq2seq_rdrop.decoding import SEARCHES

    assert STRATEGIES == tuple(SEARCHES)
    assert all(hasattr(GenerationConfig(), field) for field in HF_DECODE_FIELDS.values())  # HF's own names


def test_sampling_and_diverse_beam_settings_pass():
    """Relations between options hold where they matter: samples are not bounded by beam_size, and groups
    need only divide beam search's beams."""
    for overrides in (["decode.strategy=sample", "decode.num_return=20", "decode.top_p=0.9", "decode.top_k=50",
                       "decode.temperature=0.7", "decode.seed=3", "decode.repetition_penalty=1.2"],
                      ["decode.beam_size=6", "decode.beam_groups=3", "decode.diversity_penalty=0.5",
                       "decode.num_return=6"],
                      ["decode.strategy=sample", "decode.beam_groups=3"],
                      ["+trainer.final_decodes.sampled.strategy=sample",
                       "+trainer.final_decodes.sampled.num_return=5"]):
        validate(compose_cfg(overrides))


BAD = [
    ("trainer.batch_size=0", "trainer.batch_size=0: allowed values are integers >= 1"),
    ("trainer.lr=-1", "trainer.lr=-1: allowed values are numbers > 0"),
    ("trainer.lr=0", "trainer.lr=0: allowed values are numbers > 0"),
    ("trainer.weight_decay=-0.1", "trainer.weight_decay=-0.1: allowed values are numbers >= 0"),
    ("trainer.warmup_ratio=1.5", "trainer.warmup_ratio=1.5: allowed values are numbers in [0, 1]"),
    ("trainer.max_grad_norm=0", "trainer.max_grad_norm=0: allowed values are numbers > 0"),
    ("trainer.label_smoothing=1", "trainer.label_smoothing=1: allowed values are numbers in [0, 1)"),
    ("trainer.max_steps=0", "trainer.max_steps=0: allowed values are null or integers >= 1"),
    ("trainer.epochs=0", "trainer.epochs=0: allowed values are integers >= 1"),
    ("trainer.max_minutes=-5", "trainer.max_minutes=-5: allowed values are null or numbers > 0"),
    ("trainer.eval_every=0", "trainer.eval_every=0: allowed values are null or integers >= 1"),
    ("trainer.log_every=0", "trainer.log_every=0: allowed values are integers >= 1"),
    ("trainer.save_every=-1", "trainer.save_every=-1: allowed values are integers >= 0"),
    ("trainer.keep_last_states=0", "trainer.keep_last_states=0: allowed values are integers >= 1"),
    ("trainer.keep_last_states=3 trainer.save_every=0", "trainer.keep_last_states > 1 needs trainer.save_every > 0"),
    ("trainer.ema_decay=1.5", "trainer.ema_decay=1.5: allowed values are null or numbers in (0, 1)"),
    ("trainer.num_threads=0", "trainer.num_threads=0: allowed values are null or integers >= 1"),
    ("trainer.monitor=accuracy", "trainer.monitor='accuracy': allowed values are rouge-1, rouge-2, rouge-l, bleu"),
    ("trainer.keep=worst", "trainer.keep='worst': allowed values are best, last"),
    ("trainer.precision=fp8", "trainer.precision='fp8': allowed values are fp32, bf16"),
    ("trainer.device=tpu", "trainer.device='tpu': allowed values are auto, cpu, cuda, cuda:N"),
    ("trainer.fast_dropout=maybe", "trainer.fast_dropout='maybe': allowed values are true or false"),
    ("trainer.tensorboard=maybe", "trainer.tensorboard='maybe': allowed values are true or false"),
    ("trainer.resume=/no/such/state", "trainer.resume=/no/such/state: no such directory"),
    ("+trainer.final_decodes.wide.beam_size=100", "trainer.final_decodes.wide.beam_size=100: allowed values are 1 to 64"),
    ("+trainer.final_decodes.wide.beam=4", "trainer.final_decodes.wide.beam: unknown decoding option"),
    ("model.dropout=1.5", "model.dropout=1.5: allowed values are null or numbers in [0, 1)"),
    ("model.dropout=-0.1", "model.dropout=-0.1: allowed values are null or numbers in [0, 1)"),
    ("model.hidden_size=0", "model.hidden_size=0: allowed values are integers >= 1"),
    ("model.hidden_size=30", "model.hidden_size=30: must be a multiple of model.num_heads=4"),
    ("model.copy=sometimes", "model.copy='sometimes': allowed values are null, true or false"),
    ("model=bart", "model.pretrained=??? must be set"),
    ("model.pretrained=/no/such/checkpoint", "model.pretrained=/no/such/checkpoint: no such directory"),
    ("data.max_source_len=0", "data.max_source_len=0: allowed values are integers >= 1"),
    ("data.max_target_len=-3", "data.max_target_len=-3: allowed values are integers >= 1"),
    ("data.vocab_min_count=0", "data.vocab_min_count=0: allowed values are integers >= 1"),
    ("data.holdout_test=-1", "data.holdout_test=-1: allowed values are integers >= 0"),
    ("data.max_train_samples=-1", "data.max_train_samples=-1: allowed values are null or integers >= 0"),
    ("data.dev_file=null", "data.dev_file=null: a dev file is required"),
    ("data.dir=/no/such/data", "data.dir=/no/such/data: no such directory"),
    ("seed=-1", "seed=-1: allowed values are integers from 0 to 4294967295"),
    ("decode.beam_size=10000", "decode.beam_size=10000: allowed values are 1 to 64"),
    ("decode.beam_size=0", "decode.beam_size=0: allowed values are integers >= 1"),
    ("decode.num_return=17", "decode.num_return=17 cannot exceed decode.beam_size=16"),
    ("decode.length_penalty=nan", "decode.length_penalty=nan: allowed values are numbers in [-10, 10]"),
    ("decode.length_penalty=inf", "decode.length_penalty=inf: allowed values are numbers in [-10, 10]"),
    # issue 39: 400 overflowed and -400 divided by zero in decoding._normalise
    ("decode.length_penalty=400", "decode.length_penalty=400: allowed values are numbers in [-10, 10]"),
    ("decode.length_penalty=-400", "decode.length_penalty=-400: allowed values are numbers in [-10, 10]"),
    ("decode.length_penalty=1e308", "decode.length_penalty=1e+308: allowed values are numbers in [-10, 10]"),
    ("decode.max_len=0", "decode.max_len=0: allowed values are integers >= 1"),
    ("decode.min_len=40", "decode.min_len=40 cannot exceed decode.max_len=32"),
    ("decode.no_repeat_ngram=-1", "decode.no_repeat_ngram=-1: allowed values are integers >= 0"),
    ("decode.batch_size=0", "decode.batch_size=0: allowed values are integers >= 1"),
    ("decode.use_cache=1", "decode.use_cache=1: true or false"),
    ("regularizer=rdrop regularizer.alpha=-4", "regularizer.alpha=-4: allowed values are numbers >= 0"),
    ("regularizer=rdrop regularizer.alpha=nan", "regularizer.alpha=nan: allowed values are numbers >= 0"),
    ("regularizer=grad_penalty regularizer.epsilon=-1", "regularizer.epsilon=-1: allowed values are numbers >= 0"),
    ("regularizer=random_replace regularizer.prob=1.5", "regularizer.prob=1.5: allowed values are numbers in [0, 1]"),
    ("regularizer=random_replace regularizer.example_prob=-0.5",
     "regularizer.example_prob=-0.5: allowed values are numbers in [0, 1]"),
    ("regularizer=random_replace regularizer.source=corpus",
     "regularizer.source='corpus': allowed values are sequence, vocab"),
    ("regularizer=rdrop regularizer.model_dropout=1.0",
     "regularizer.model_dropout=1.0: allowed values are null or numbers in [0, 1)"),
    ("regularizer=rdrop_random_replace regularizer.inner.alpha=-1",
     "regularizer.inner.alpha=-1: allowed values are numbers >= 0"),
    ("regularizer=rdrop +regularizer.epsilon=1", "regularizer.epsilon: unknown option of "
                                                 "seq2seq_rdrop.regularizers.RDrop; known: name, label_smoothing"),
    ("regularizer=rdrop regularizer._target_=nope.Nope", "regularizer._target_=nope.Nope: no such class"),
    ("regularizer=rdrop_semi data.unlabeled_file=u.txt ~regularizer.inner",
     "regularizer.inner: a semi-supervised regularizer wraps the labelled pairs' regularizer"),
    ("model.family=gpt", "model.family='gpt': allowed values are unilm, bart"),
    ("model=bart_small model.ffn_size=0", "model.ffn_size=0: allowed values are integers >= 1"),
    ("trainer.lr_schedule=cosine", "trainer.lr_schedule='cosine': allowed values are linear, constant"),
]

BAD_DECODE = [  # sampling, diverse beam search, repetition penalty (issue 17)
    ("decode.strategy=greedy", "decode.strategy='greedy': allowed values are beam, sample"),
    ("decode.temperature=0", "decode.temperature=0: allowed values are numbers in [0.01, 100]"),
    # issue 39: beyond float32's range every sampled title came out empty with a null score
    ("decode.temperature=1e308", "decode.temperature=1e+308: allowed values are numbers in [0.01, 100]"),
    ("decode.temperature=1e-50", "decode.temperature=1e-50: allowed values are numbers in [0.01, 100]"),
    ("decode.top_p=0", "decode.top_p=0: allowed values are numbers in (0, 1]"),
    ("decode.top_p=1.5", "decode.top_p=1.5: allowed values are numbers in (0, 1]"),
    ("decode.top_k=-1", "decode.top_k=-1: allowed values are integers >= 0"),
    ("decode.top_k=2.5", "decode.top_k=2.5: an integer is required"),
    ("decode.seed=-1", "decode.seed=-1: allowed values are integers >= 0"),
    ("decode.beam_groups=0", "decode.beam_groups=0: allowed values are integers >= 1"),
    ("decode.beam_groups=3", "decode.beam_groups=3 must divide decode.beam_size=16 (groups of equal size)"),
    ("decode.diversity_penalty=-1", "decode.diversity_penalty=-1: allowed values are numbers >= 0"),
    ("decode.repetition_penalty=0", "decode.repetition_penalty=0: allowed values are numbers in [0.01, 100]"),
    ("decode.repetition_penalty=nan", "decode.repetition_penalty=nan: allowed values are numbers in [0.01, 100]"),
    ("decode.repetition_penalty=1e-50", "decode.repetition_penalty=1e-50: allowed values are numbers in [0.01, 100]"),
    ("decode.strategy=sample decode.num_return=65",
     "decode.num_return=65: allowed values are 1 to 64 samples per abstract"),
    ("+trainer.final_decodes.sampled.top_p=2",
     "trainer.final_decodes.sampled.top_p=2: allowed values are numbers in (0, 1]"),
]

BAD_PRETRAIN = [
    ("pretrain.delete_ratio=1.0", "pretrain.delete_ratio=1.0: allowed values are numbers in [0, 1)"),
    ("pretrain.shuffle_prob=2", "pretrain.shuffle_prob=2: allowed values are numbers in [0, 1]"),
    ("pretrain.context_prob=-1", "pretrain.context_prob=-1: allowed values are numbers in [0, 1]"),
    ("pretrain.heldout=0", "pretrain.heldout=0: allowed values are integers >= 1"),
    ("pretrain.title_copies=0", "pretrain.title_copies=0: allowed values are integers >= 1"),
    ("pretrain.title_denoise=false pretrain.gap_sentence=false", "enable at least one"),
]


@pytest.mark.parametrize("config,override,message", [("train", o, m) for o, m in BAD + BAD_DECODE]
                         + [("pretrain", o, m) for o, m in BAD_PRETRAIN])
def test_each_out_of_range_option_is_refused_naming_it(config, override, message):
    cfg = compose_cfg(override.split(), config)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize("script,override,message", [
    ("train.py", "trainer.batch_size=0", "error: trainer.batch_size=0: allowed values are integers >= 1"),
    ("train.py", "regularizer=rdrop regularizer.alpha=-4",
     "error: regularizer.alpha=-4: allowed values are numbers >= 0 (the weight of R-Drop's KL term)"),
    ("train.py", "decode.length_penalty=400", "error: decode.length_penalty=400: allowed values are numbers in "
                                              "[-10, 10]"),
    ("train.py", "decode.beam_size=10000", "error: decode.beam_size=10000: allowed values are 1 to 64 (memory grows "
                                           "with the beam; titles stop improving long before)"),
    ("train.py", "trainer.bogus=1", "error: unknown option 'trainer.bogus' (python train.py --help lists the options)"),
    ("pretrain.py", "model.dropout=1.5", "error: model.dropout=1.5: allowed values are null or numbers in [0, 1)"),
    ("pretrain.py", "pretrain.shuffle_prob=2", "error: pretrain.shuffle_prob=2: allowed values are numbers in [0, 1]"),
])
def test_scripts_refuse_a_bad_option_in_one_line_before_the_run_directory_exists(script, override, message, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_script(script, *override.split(), f"hydra.run.dir={run_dir}")
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [message], "")
    assert not run_dir.exists()


def test_multirun_refuses_a_bad_option_before_the_sweep_directory_exists(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script("train.py", "-m", "seed=0,1", "trainer.lr=-1", f"hydra.sweep.dir={sweep}")
    assert (proc.returncode, proc.stderr.splitlines()) == (2, ["error: trainer.lr=-1: allowed values are numbers > 0"])
    assert not sweep.exists()


def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    proc = run_script("train.py", "trainer.batch_size=0", f"hydra.run.dir={tmp_path / 'run'}",
                      env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "trainer.batch_size=0" in proc.stderr


def test_data_errors_reach_the_user_as_file_line_in_one_line(tmp_path):
    data = tmp_path / "csl"
    data.mkdir()
    pairs = make_pairs(30)
    write_tsv(data / "train.tsv", pairs[:5])
    with open(data / "train.tsv", "a", encoding="utf-8") as f:
        f.write("a line with one column\n")
    write_tsv(data / "dev.tsv", make_pairs(4, seed=1))
    message = (f"error: {data / 'train.tsv'}:6: expected 2 tab-separated columns (tsv2), found 1 "
               "(set data.skip_bad_lines=true to skip such lines)")
    for script in ("train.py", "pretrain.py"):
        proc = run_script(script, f"data.dir={data}", f"hydra.run.dir={tmp_path / script}", *TINY)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert [line for line in proc.stderr.splitlines() if "[INFO]" not in line] == [message], script
        assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ decoding bounds known once the model is


def tiny_model(vocab_size=50, hidden=32, layers=2, family="unilm"):
    """A fresh model of the family (random weights, no tokenizer needed)."""
    from transformers import BartConfig, BartForConditionalGeneration, BertConfig, BertForMaskedLM

    from seq2seq_rdrop.models import BartSeq2Seq, UniLM

    if family == "bart":
        config = BartConfig(vocab_size=vocab_size, d_model=hidden, encoder_layers=1, decoder_layers=layers,
                            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=hidden,
                            decoder_ffn_dim=hidden)
        return BartSeq2Seq(BartForConditionalGeneration(config), 0, 1, 2, decoder_start_id=1)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden)
    return UniLM(BertForMaskedLM(config), 0, 1, 2)


def test_training_refuses_beams_beyond_the_vocabulary_and_the_memory_before_its_first_step(monkeypatch):
    from seq2seq_rdrop import decode_options
    from seq2seq_rdrop.config_checks import check_run_decoding

    cfg = compose_cfg(["decode.beam_size=40"])
    check_run_decoding(cfg, tiny_model(vocab_size=50))
    with pytest.raises(ConfigError, match=r"^decode.beam_size=40 exceeds the model's vocabulary of 30 tokens$"):
        check_run_decoding(cfg, tiny_model(vocab_size=30))
    wide = compose_cfg(["+trainer.final_decodes.wide.beam_size=48"])
    with pytest.raises(ConfigError, match="^trainer.final_decodes.wide.beam_size=48 exceeds the model's vocabulary"):
        check_run_decoding(wide, tiny_model(vocab_size=40))

    monkeypatch.setattr(decode_options, "available_memory", lambda device=None: 2**20)  # 1 MiB free
    with pytest.raises(ConfigError) as info:
        check_run_decoding(compose_cfg([]), tiny_model(vocab_size=5000))
    assert str(info.value).startswith("decoding 64 abstract(s) x decode.beam_size=16 at once needs about ")
    assert str(info.value).endswith("GiB of memory available: lower decode.batch_size or decode.beam_size")


def test_the_decoding_memory_estimate_grows_with_beams_and_length():
    model = tiny_model(vocab_size=5000, hidden=256, layers=4)
    one = model.estimate_decode_bytes(16, 130, 32)
    assert model.estimate_decode_bytes(32, 130, 32) == 2 * one
    assert model.estimate_decode_bytes(16, 258, 32) > one
    # the preset's evaluation: 64 abstracts x 16 beams, 128 + 2 source tokens, 32 title tokens: about 1.5 GiB
    assert 1.0 < model.estimate_decode_bytes(64 * 16, 130, 32) / 2**30 < 2.0
    # a BART of the same sizes: 4 cached decoder layers, and the encoder's output counted twice
    bart = tiny_model(vocab_size=5000, hidden=256, layers=4, family="bart")
    assert bart.estimate_decode_bytes(16, 130, 32) == one + 16 * 130 * 256 * 4
