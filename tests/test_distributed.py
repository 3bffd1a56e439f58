"""torchrun with 2 CPU processes (gloo): both ranks end with identical weights, rank 0 writes the run."""
import json
import subprocess
import sys

from conftest import REPO, TINY


def test_two_cpu_ranks_end_with_identical_weights(data_dir, tmp_path):
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
         "train.py", f"data.dir={data_dir}", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.save_every=2",
         "trainer.device=cpu", f"hydra.run.dir={out}", *TINY],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    first, second = metrics["rank_weight_checksums"]
    assert first == second
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "predictions_dev.tsv").is_file()
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # TensorBoard: rank 0's event file alone
