"""Self-supervised pretraining on title-only text and training abstracts: `python pretrain.py [overrides]`.

Fine-tune from its checkpoint with `python train.py model.pretrained=<run dir>/checkpoint`.
Failures are reported as one `error: ...` line with a non-zero exit status (HYDRA_FULL_ERROR=1: the traceback)."""
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seq2seq_rdrop.cli import report_errors, run_hydra_app


@hydra.main(version_base="1.3", config_path="conf", config_name="pretrain")
def _hydra_main(cfg: DictConfig) -> None:
    with report_errors("pretrain.py"):
        from seq2seq_rdrop.pretraining import pretrain

        pretrain(cfg, HydraConfig.get().runtime.output_dir)


def main() -> int:
    return run_hydra_app(_hydra_main, "pretrain.py")


if __name__ == "__main__":
    sys.exit(main())
