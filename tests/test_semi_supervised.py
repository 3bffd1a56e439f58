"""Semi-supervised R-Drop and self-training (issue 18) and R-Drop's two executions (issue 17, `passes`).

Unit tests use the tiny UniLM of tests/test_regularizers.py; the end-to-end ones tiny train.py runs
(test_resume.py's settings) on synthetic data, one CPU thread.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from conftest import compose_config, compose_train, train_in_process
from test_regularizers import ce_by_hand, kl_by_hand, make_batch, tiny_model, tok, wrap_forward  # noqa: F401
from test_resume import TINY, kill_after_first_state, resume_here, train_here, write_data
from seq2seq_rdrop.config_checks import ConfigError, validate
from seq2seq_rdrop.decoding import greedy_search
from seq2seq_rdrop.regularizers import Baseline, RDrop, SemiSupervised
from seq2seq_rdrop.regularizers.semi_supervised import UNLABELED, pseudo_titled_batch
from seq2seq_rdrop.training import UnlabeledStream

pytestmark = pytest.mark.usefixtures("one_thread")
SEMI_YAMLS = ("rdrop_semi", "self_train", "rdrop_semi_self_train")


def with_unlabeled(model, tok, batch, n: int = 3, seed: int = 7) -> dict:
    """`batch` plus the src_ids of n other abstracts as batch["unlabeled"], as the training loop adds them."""
    return {**batch, UNLABELED: {"src_ids": make_batch(model, tok, n=max(n, 4), seed=seed)["src_ids"][:n]}}


def grads_of(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --------------------------------------------------------------------------- R-Drop: doubled or twice


def test_an_unknown_passes_value_is_refused_when_built():
    with pytest.raises(ValueError, match=r"regularizer.passes='thrice': allowed values are doubled, twice, auto"):
        RDrop(passes="thrice")


def test_doubled_and_twice_give_the_same_loss_and_gradients_without_dropout(tok):
    model = tiny_model(tok, dropout=0.0)
    model.train()
    batch = make_batch(model, tok)
    calls = wrap_forward(model)
    loss_doubled, parts_doubled = RDrop(passes="doubled")(model, batch)
    grads_doubled = grads_of(model, loss_doubled)
    loss_twice, parts_twice = RDrop(passes="twice")(model, batch)
    grads_twice = grads_of(model, loss_twice)
    assert [c["batch"]["src_ids"].size(0) for c in calls] == [8, 4, 4]  # one pass over 2B rows, then two over B
    # the same arithmetic on each row, only the matrices' row counts differ: equal up to float rounding
    assert torch.allclose(loss_doubled, loss_twice, rtol=1e-6, atol=1e-7)
    assert parts_doubled["ce"] == pytest.approx(parts_twice["ce"], rel=1e-6)
    assert grads_doubled.keys() == grads_twice.keys()
    for name in grads_doubled:
        assert torch.allclose(grads_doubled[name], grads_twice[name], rtol=1e-5, atol=1e-7), name


class RowSeededDropout(torch.nn.Dropout):
    """A dropout mask that depends only on (module, row number counted over the calls since `reset`): one
    call over 2B rows draws the masks that two calls over B rows draw."""

    def __init__(self, p: float, index: int):
        super().__init__(p)
        self.index, self.rows_seen = index, 0

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        masks = []
        for row in range(x.size(0)):
            generator = torch.Generator().manual_seed(self.index * 100_003 + self.rows_seen + row)
            masks.append(torch.rand(x.shape[1:], generator=generator) >= self.p)
        self.rows_seen += x.size(0)
        return x * torch.stack(masks) / (1 - self.p)


def row_seeded(model) -> list[RowSeededDropout]:
    modules = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                modules.append(RowSeededDropout(child.p, len(modules)))
                setattr(parent, name, modules[-1])
    return modules


def test_doubled_and_twice_give_the_same_loss_and_gradients_for_the_same_dropout_masks(tok):
    """With dropout on, the two executions draw their masks from the random stream in a different order, so
    they agree in distribution only; given the same masks (row-seeded here) they agree as without dropout.
    Attention dropout (inside the attention kernel, not a module) is off."""
    model = tiny_model(tok, dropout=0.3)
    model.set_dropout(0.3, 0.0)
    dropouts = row_seeded(model)
    assert len(dropouts) > 3
    model.train()
    batch = make_batch(model, tok)
    results = {}
    for passes in ("doubled", "twice"):
        for module in dropouts:
            module.rows_seen = 0
        loss, parts = RDrop(passes=passes)(model, batch)
        results[passes] = (loss, parts, grads_of(model, loss))
    (loss_d, parts_d, grads_d), (loss_t, parts_t, grads_t) = results["doubled"], results["twice"]
    assert parts_d["kl"] > 1e-3  # the two passes of each execution really differ
    assert torch.allclose(loss_d, loss_t, rtol=1e-5) and parts_d["kl"] == pytest.approx(parts_t["kl"], rel=1e-4)
    for name in grads_d:
        assert torch.allclose(grads_d[name], grads_t[name], rtol=1e-4, atol=1e-6), name


def test_auto_runs_twice_on_cpu(tok):
    model = tiny_model(tok, dropout=0.1)
    model.train()
    batch = make_batch(model, tok)
    calls = wrap_forward(model)
    RDrop(passes="auto")(model, batch)
    assert [c["batch"]["src_ids"].size(0) for c in calls] == [4, 4]


# --------------------------------------------------------------------------- the semi-supervised terms


def test_with_both_unlabelled_weights_zero_the_loss_is_exactly_plain_rdrop(tok):
    model = tiny_model(tok, dropout=0.3)
    model.train()
    batch = make_batch(model, tok)
    semi = SemiSupervised(inner=RDrop(), unlabeled_alpha=0.0, self_train=0.0)
    assert semi.unlabeled_per_labeled() == 0  # the training loop then reads no unlabelled data at all
    torch.manual_seed(0)
    loss, parts = semi(model, with_unlabeled(model, tok, batch))
    torch.manual_seed(0)
    want, want_parts = RDrop()(model, batch)
    assert torch.equal(loss, want) and parts == want_parts


def test_pseudo_titles_are_greedy_without_dropout_and_leave_mode_and_random_state_alone(tok):
    model = tiny_model(tok, dropout=0.5)
    model.train()
    src = make_batch(model, tok, n=5, seed=3)["src_ids"]
    rng = torch.get_rng_state()
    first = pseudo_titled_batch(model, src, max_len=6)
    assert torch.equal(torch.get_rng_state(), rng)  # nothing drawn: a resumed run decodes the same titles
    assert model.training
    torch.manual_seed(123)
    assert all(torch.equal(first[k], v) for k, v in pseudo_titled_batch(model, src, max_len=6).items())
    model.eval()
    hyps = greedy_search(model, src, max_len=6)
    for row, hyp in enumerate(hyps):
        title = first["tgt_out"][row][first["tgt_out"][row] != model.pad_id].tolist()
        assert title == hyp.tokens + [model.eos_id]
        assert first["tgt_in"][row][: len(hyp.tokens)].tolist() == hyp.tokens
    assert torch.equal(first["src_ids"], src[:, : first["src_ids"].size(1)])


def test_unlabelled_kl_is_zero_without_dropout(tok):
    model = tiny_model(tok, dropout=0.0)
    model.train()
    batch = make_batch(model, tok)
    loss, parts = SemiSupervised(inner=RDrop(), unlabeled_alpha=4.0)(model, with_unlabeled(model, tok, batch))
    assert parts["kl_unlabeled"] == pytest.approx(0.0, abs=1e-7) and parts["kl"] == pytest.approx(0.0, abs=1e-7)
    assert torch.isfinite(loss)


def test_unlabelled_kl_is_positive_with_dropout_and_taken_on_the_pseudo_titles_tokens(tok):
    model = tiny_model(tok, dropout=0.3)
    model.train()
    batch = make_batch(model, tok)
    full = with_unlabeled(model, tok, batch, n=3)
    calls = wrap_forward(model)
    alpha_u = 2.0
    loss, parts = SemiSupervised(inner=RDrop(alpha=4.0), unlabeled_alpha=alpha_u)(model, full)
    labelled, unlabelled = calls[0], calls[-1]  # R-Drop's doubled pass; the pseudo-titles' doubled pass
    assert labelled["batch"]["src_ids"].size(0) == 8 and unlabelled["batch"]["src_ids"].size(0) == 6
    pseudo_out = unlabelled["batch"]["tgt_out"][:3]
    model.eval()
    hyps = greedy_search(model, full[UNLABELED]["src_ids"], max_len=32)
    mask = pseudo_out != model.pad_id
    assert mask.sum(1).tolist() == [len(h.tokens) + 1 for h in hyps]  # the greedy title and its end token
    lp1, lp2 = unlabelled["out"].detach().chunk(2)
    kl = kl_by_hand(lp1, lp2, mask) + kl_by_hand(lp2, lp1, mask)
    assert parts["kl_unlabeled"] > 0 and parts["kl_unlabeled"] == pytest.approx(kl.item(), rel=1e-4)
    ce_u = (ce_by_hand(lp1, pseudo_out, model.pad_id) + ce_by_hand(lp2, pseudo_out, model.pad_id)) / 2
    assert parts["ce_unlabeled"] == pytest.approx(ce_u.item(), rel=1e-5)
    l1, l2 = labelled["out"].detach().chunk(2)
    tgt_mask = batch["tgt_out"] != model.pad_id
    rdrop = (ce_by_hand(l1, batch["tgt_out"], model.pad_id) + ce_by_hand(l2, batch["tgt_out"], model.pad_id)) / 2 \
        + (kl_by_hand(l1, l2, tgt_mask) + kl_by_hand(l2, l1, tgt_mask))
    assert torch.allclose(loss.detach(), rdrop + alpha_u / 4 * kl, rtol=1e-5)  # no self-training term


def test_self_training_adds_the_ce_of_the_pseudo_titles_in_one_pass(tok):
    model = tiny_model(tok, dropout=0.0)
    model.train()
    batch = make_batch(model, tok)
    calls = wrap_forward(model)
    loss, parts = SemiSupervised(inner=Baseline(), unlabeled_alpha=0.0, self_train=0.5)(
        model, with_unlabeled(model, tok, batch))
    assert [c["batch"]["src_ids"].size(0) for c in calls] == [4, 3] and "kl_unlabeled" not in parts
    pseudo = calls[1]["batch"]["tgt_out"]
    ce_u = ce_by_hand(calls[1]["out"].detach(), pseudo, model.pad_id)
    ce = ce_by_hand(calls[0]["out"].detach(), batch["tgt_out"], model.pad_id)
    assert parts["ce_unlabeled"] == pytest.approx(ce_u.item(), rel=1e-5)
    assert torch.allclose(loss.detach(), ce + 0.5 * ce_u, rtol=1e-5)


@pytest.mark.parametrize("name", SEMI_YAMLS)
def test_every_semi_supervised_yaml_trains_a_tiny_model(tok, name):
    reg = instantiate(compose_train([f"regularizer={name}", "data.unlabeled_file=train.tsv"]).regularizer)
    assert reg.name == name and reg.unlabeled_per_labeled() == 1.0
    model = tiny_model(tok, dropout=0.1, seed=1)
    reg.apply_dropout(model)
    model.train()
    batch = with_unlabeled(model, tok, make_batch(model, tok, n=4, seed=5), n=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(4):
        loss, parts = reg(model, batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert "ce_unlabeled" in parts and ("kl_unlabeled" in parts) == (reg.unlabeled_alpha > 0)
    assert ("kl" in parts) == isinstance(reg.inner, RDrop)


# --------------------------------------------------------------------------- data and options


def test_the_unlabelled_stream_is_a_function_of_the_step():
    stream = UnlabeledStream(list(range(10)), rows=4, seed=0)
    steps = [stream.batch(s) for s in range(5)]  # 20 draws: two full passes over the 10
    drawn = [x for b in steps for x in b]
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))
    assert drawn[:10] != drawn[10:]  # each pass reshuffled
    assert UnlabeledStream(list(range(10)), rows=4, seed=0).batch(3) == steps[3]  # a resumed run's step 3
    assert UnlabeledStream(list(range(10)), rows=4, seed=1).batch(0) != steps[0]


def test_a_semi_supervised_regularizer_needs_an_unlabelled_file_and_its_options_are_checked():
    with pytest.raises(ConfigError, match=r"^data.unlabeled_file=null: regularizer 'rdrop_semi' is semi-supervised"):
        validate(compose_train(["regularizer=rdrop_semi"]))
    for override, message in [
        ("regularizer.passes=thrice", "regularizer.passes='thrice': allowed values are doubled, twice, auto"),
        ("regularizer.unlabeled_alpha=-1", "regularizer.unlabeled_alpha=-1: allowed values are numbers >= 0"),
        ("regularizer.unlabeled_ratio=0", "regularizer.unlabeled_ratio=0: allowed values are numbers > 0"),
        ("regularizer.self_train=-0.5", "regularizer.self_train=-0.5: allowed values are numbers >= 0"),
        ("regularizer.pseudo_max_len=0", "regularizer.pseudo_max_len=0: allowed values are integers >= 1"),
    ]:
        with pytest.raises(ConfigError) as info:
            validate(compose_train(["regularizer=rdrop_semi", "data.unlabeled_file=train.tsv", override]))
        assert message in str(info.value) and "\n" not in str(info.value)
    validate(compose_train(["regularizer=rdrop", "regularizer.passes=auto"]))
    with pytest.raises(ConfigError, match=r"pretrain.train_titles=-1: allowed values are null or integers >= 0"):
        validate(compose_config(["pretrain.train_titles=-1"], "pretrain"))


def without_seconds(train_log: str) -> list[str]:
    """train_log.csv's rows without the wall-clock column (the last)."""
    return [line.rsplit(",", 1)[0] for line in train_log.splitlines()]


def write_semi_data(root: Path, poison: str | None = None) -> Path:
    """test_resume's data, 40 pairs, plus unlabelled.tsv: 16 more pairs whose title column is `poison`
    repeated (a made-up title) when given, else the real titles."""
    data = write_data(root)
    rng = random.Random(1)
    alphabet = [chr(0x4E00 + i) for i in range(24)]
    lines = []
    for i in range(16):
        abstract = "".join(rng.choice(alphabet) for _ in range(rng.randint(16, 30)))
        title = abstract[:rng.randint(4, 8)] if poison is None else poison * (1 + i % 3)
        lines.append(f"{title}\t{abstract}\n")
    (data / "unlabelled.tsv").write_text("".join(lines), encoding="utf-8")
    return data


SEMI_RUN = ["regularizer=rdrop_semi", "data.unlabeled_file=unlabelled.tsv", "data.max_train_samples=24",
            "regularizer.unlabeled_ratio=0.5"]
SEMI_STEPS = 12  # resume test: states every 5 steps (test_resume.TINY), killed after the first


def test_unlabelled_titles_never_reach_the_loss(tmp_path):
    """Two runs whose unlabelled files differ only in their title column (made-up "poison" titles of
    characters the labelled data never hold, or repeated labelled characters) train identically."""
    tiny = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.eval_every", "trainer.save_every"))]
    logs, weights = [], []
    for i, poison in enumerate(("毒药标题", "一一")):
        data = write_semi_data(tmp_path / f"data{i}", poison)
        metrics = train_in_process(tmp_path / f"run{i}", *tiny, *SEMI_RUN, f"data.dir={data}", "trainer.max_steps=3",
                                   "trainer.eval_every=3", "trainer.save_every=3", "data.max_eval_samples=2")
        assert metrics["data"]["unlabeled"] == 16
        logs.append((tmp_path / f"run{i}" / "train_log.csv").read_text())
        weights.append(load_file(tmp_path / f"run{i}" / "state" / "model" / "model.safetensors"))
        vocab = (tmp_path / f"run{i}" / "checkpoint" / "vocab.txt").read_text(encoding="utf-8")
        assert "毒" not in vocab and "药" not in vocab
    assert without_seconds(logs[0]) == without_seconds(logs[1]) and "kl_unlabeled" in logs[0]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_unlabelled_abstracts_are_the_training_file_less_the_labelled_pairs(tmp_path):
    from seq2seq_rdrop.splits import load_splits

    data = write_data(tmp_path / "data")
    rows = (data / "train.tsv").read_text(encoding="utf-8").splitlines()
    cfg = compose_train([f"data.dir={data}", "+experiment=semi_supervised", f"model.pretrained={tmp_path}",
                         "data.max_train_samples=25"])
    splits = load_splits(cfg)
    assert [e.abstract for e in splits.train] == [r.split("\t")[1] for r in rows[:25]]
    assert splits.unlabeled == [r.split("\t")[1] for r in rows[25:]]


def test_a_killed_semi_supervised_run_resumes_to_the_same_result_and_logs_kl_unlabeled(tmp_path, caplog):
    """As tests/test_resume.py, with rdrop_semi: the unlabelled batches and pseudo-titles of the resumed
    steps are those of the uninterrupted run."""
    data = write_semi_data(tmp_path / "data")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    run = [*SEMI_RUN, f"trainer.max_steps={SEMI_STEPS}", f"trainer.eval_every={SEMI_STEPS}"]
    saved_step = kill_after_first_state(killed_dir, data, *run)
    resumed_log = resume_here(killed_dir, data, caplog, *run)
    train_here(full_dir, data, *run)  # the uninterrupted reference
    assert f"at step {saved_step}" in resumed_log

    want = json.loads((full_dir / "metrics.json").read_text())
    got = json.loads((killed_dir / "metrics.json").read_text())
    assert got["dev"] == want["dev"] and got["data"]["unlabeled"] == 16 and got["data"]["train"] == 24
    assert got["regularizer"]["name"] == "rdrop_semi"
    a = load_file(full_dir / "state" / "model" / "model.safetensors")
    b = load_file(killed_dir / "state" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = (killed_dir / "train_log.csv").read_text()
    assert without_seconds(logged) == without_seconds((full_dir / "train_log.csv").read_text())
    header, *rows = logged.splitlines()
    kl_u = [float(row.split(",")[header.split(",").index("kl_unlabeled")]) for row in rows]
    assert len(kl_u) == SEMI_STEPS and all(v > 0 for v in kl_u)


# --------------------------------------------------------------------------- pretraining and the driver


def test_pretraining_never_reads_the_withheld_titles(tmp_path):
    from seq2seq_rdrop.pretraining import prepare

    rng = random.Random(0)
    abstract_chars = [chr(0x4E00 + i) for i in range(40)]
    title_chars = [chr(0x6000 + i) for i in range(40)]  # no title character occurs in any abstract
    pairs = []
    for _ in range(30):
        abstract = "。".join("".join(rng.choice(abstract_chars) for _ in range(12)) for _ in range(3)) + "。"
        pairs.append(("".join(rng.choice(title_chars) for _ in range(8)), abstract))
    data = tmp_path / "csl"
    data.mkdir()
    (data / "train.tsv").write_text("".join(f"{t}\t{a}\n" for t, a in pairs), encoding="utf-8")
    (data / "dev.tsv").write_text(f"{pairs[0][0][::-1]}\t{pairs[0][1][::-1]}\n", encoding="utf-8")
    # a title-only file that also holds a copy of a withheld title: it must be dropped too
    (data / "titles_only.txt").write_text("题目甲乙丙丁戊\n" + pairs[20][0] + "\n", encoding="utf-8")
    cfg = compose_config([f"data.dir={data}", "pretrain.train_titles=10", "pretrain.heldout=2"], "pretrain")
    validate(cfg)
    prepare(cfg, data, tmp_path / "pre")
    seen = "".join((tmp_path / "pre" / f).read_text(encoding="utf-8") for f in ("train.tsv", "heldout.tsv"))
    assert all(title not in seen for title, _ in pairs[10:])
    assert all(title in seen for title, _ in pairs[:10]) and "题目甲乙丙丁戊" in seen
    assert any(abstract.split("。")[0] in seen for _, abstract in pairs[10:])  # their abstracts are used
