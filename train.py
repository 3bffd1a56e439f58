"""Train a title generator and score it on dev (and test): `python train.py [overrides]`.

Options are checked before anything is read or written (seq2seq_rdrop/config_checks.py); every failure
is reported as one `error: ...` line with a non-zero exit status (HYDRA_FULL_ERROR=1: the traceback)."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seq2seq_rdrop.cli import report_errors, run_hydra_app


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    with report_errors("train.py"):
        from seq2seq_rdrop.training import train

        metrics = train(cfg, HydraConfig.get().runtime.output_dir)
    return metrics["dev"][cfg.trainer.monitor] if metrics else None  # ranks > 0 of torchrun report nothing


def main() -> int:
    return run_hydra_app(_hydra_main, "train.py")


if __name__ == "__main__":
    sys.exit(main())
