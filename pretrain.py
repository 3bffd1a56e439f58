"""Self-supervised pretraining on title-only text and training abstracts: `python pretrain.py [overrides]`.

Fine-tune from its checkpoint with `python train.py model.pretrained=<run dir>/checkpoint`."""
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="pretrain")
def main(cfg: DictConfig) -> None:
    from seq2seq_rdrop.pretraining import pretrain

    pretrain(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
