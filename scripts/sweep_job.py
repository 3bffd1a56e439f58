"""One job of a sweep's stage, run by the configured Hydra launcher (conf/sweep_job.yaml):

    python scripts/sweep_job.py -m plan=WORK_DIR/.sweep/LABEL/STAGE.json job=range(0,N) hydra/launcher=joblib_2cpu

Each job runs the Job at index `job` of the plan (a pretraining, a fine-tuning or a diagnosis; it starts the run as
its own process, skips it when finished and resumes it when stopped midway). The sweep drivers
(scripts/run_comparison.py, scripts/run_semi_supervised.py with hydra/launcher=NAME) write the plans and start one
such multirun per stage (seq2seq_rdrop/sweep_launch.py)."""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's package, from a SLURM node too


@hydra.main(version_base="1.3", config_path="../conf", config_name="sweep_job")
def main(cfg: DictConfig) -> bool:
    from seq2seq_rdrop.sweep_launch import run_planned_job

    return run_planned_job(cfg.plan, int(cfg.job), cfg.job_function, HydraConfig.get().launcher)


if __name__ == "__main__":
    main()
