"""scripts/rescore_run.py: a finished run's kept checkpoint scored with another decoding, into its own files."""
from __future__ import annotations

import json

from conftest import TINY, load_script, train_in_process, write_tiny_csl


def test_a_second_decoding_is_recorded_beside_the_main_one_which_stays_as_it_was(tmp_path, monkeypatch):
    """The new decoding's scores, title shapes, word ROUGE and per-example scores land under its name; the main
    decoding's are untouched; a given rerank replaces the run's weights whole; the name is not reused."""
    data = write_tiny_csl(tmp_path, n_train=24, n_dev=4, n_test=0)
    run = tmp_path / "run"
    train_in_process(run, f"data.dir={data}", "trainer.max_steps=2", "trainer.save_every=0", *TINY,
                     "decode.beam_size=2", "decode.span_candidates=0", "decode.rerank=rule")
    before = json.loads((run / "metrics.json").read_text())
    script = load_script("rescore_run", "scripts/rescore_run.py")
    monkeypatch.chdir(tmp_path)
    assert script.main([str(run), "plain", "decode.rerank=none"]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["dev"] == before["dev"] and after["dev_title_shape"]["main"] == before["dev_title_shape"]["main"]
    assert after["decodes"]["plain"]["overrides"] == {"rerank": "none"}
    assert after["decodes"]["plain"]["dev"]["n"] == 4 and "plain" in after["dev_title_shape"]
    assert "plain" in after["word_rouge"]["dev"]
    scores = json.loads((run / "example_scores.json").read_text())
    assert len(scores["dev"]["plain"]["rouge-l"]) == 4 and "main" in scores["dev"]
    assert (run / "predictions_dev_plain.tsv").is_file()
    assert script.main([str(run), "plain", "decode.rerank={lp:1}"]) == 2  # the name exists
    assert script.main([str(run), "plain", "decode.rerank={lp:1}", "--replace"]) == 0
    assert json.loads((run / "metrics.json").read_text())["decodes"]["plain"]["overrides"] == {"rerank": {"lp": 1}}
    assert script.main([str(run), "x", "trainer.lr=1"]) == 2  # only decode.KEY=VALUE
