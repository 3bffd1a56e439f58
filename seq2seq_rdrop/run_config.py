"""What a resumed run must share with the run it continues.

Every saved state carries state/run_config.json: the run's resolved config, the sha256 of each data file
it read, and the settings changed at earlier resumes. A resume compares the new config with it:
- settings that change the model or the data (the model group, the data files' contents, lengths,
  vocabulary, seed, regularizer, batch size, learning rate and its schedule, ...) must be equal: any
  difference refuses the resume in one line listing them;
- MAY_CHANGE settings (the step budget, evaluation and saving cadence, device, threads, logging, decoding) are
  applied, recorded with the step they took effect at, and reported in metrics.json.
Data files are compared by content, so a run directory moved to a machine whose data live elsewhere
(another data.dir) resumes.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .config_checks import ConfigError
from .data import DATA_FILES

log = logging.getLogger(__name__)

RUN_CONFIG = "run_config.json"
MAY_CHANGE = ("trainer.max_steps", "trainer.epochs", "trainer.max_minutes", "trainer.eval_every",
              "trainer.save_every", "trainer.log_every", "trainer.device", "trainer.num_threads",
              "trainer.keep_last_states", "trainer.final_decodes", "trainer.tensorboard", "decode")
# how to find the run, not what it is: never a difference (data files are compared by content instead)
NOT_COMPARED = ("trainer.resume", "trainer.overwrite", "data.dir", "data.cache_dir", "data.train_file",
                "data.dev_file", "data.test_file", "data.unlabeled_file")
DATA_FILES_KEYS = tuple(f"data.{option}" for option in DATA_FILES)


def data_file_hashes(cfg: DictConfig, data_dir: Path) -> dict[str, str]:
    """sha256 of each data file the run reads, by option (data.train_file ...)."""
    hashes = {}
    for option in DATA_FILES:
        name = cfg.data.get(option)
        if name:
            digest = hashlib.sha256()
            with open(Path(data_dir) / name, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
            hashes[f"data.{option}"] = digest.hexdigest()
    return hashes


def run_record(cfg: DictConfig, data_sha256: dict, changes: list | None = None) -> dict:
    return {"config": OmegaConf.to_container(cfg, resolve=True), "data_sha256": data_sha256,
            "changes": list(changes or [])}


def write_run_record(directory: Path, record: dict) -> None:
    (Path(directory) / RUN_CONFIG).write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str),
                                              encoding="utf-8")


def read_run_record(state_dir: Path) -> dict | None:
    """state/run_config.json (plain JSON: nothing in it is resolved or built), or None for a state saved
    before run configs were kept."""
    file = Path(state_dir) / RUN_CONFIG
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"trainer.resume: {file} is not readable JSON ({' '.join(str(e).split())})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ConfigError(f"trainer.resume: {file} holds no run config")
    return record


def find_resume_dir(resume, state_dir: Path) -> Path | None:
    """trainer.resume: false (start fresh), true (this run's state/), or a path to a state directory."""
    if resume in (False, None, "false", "False"):
        return None
    path = state_dir if resume in (True, "true", "True") else Path(str(resume))
    if path.is_dir() and (path / "state").is_dir() and not (path / "trainer_state.pt").exists():
        path = path / "state"  # a run directory was given
    if not (path / "trainer_state.pt").is_file():
        if resume in (True, "true", "True"):
            log.warning("trainer.resume=true but %s holds no saved state: starting from scratch", path)
            return None
        raise FileNotFoundError(f"trainer.resume={resume}: {path} holds no trainer_state.pt")
    return path


def precheck_resume(cfg: DictConfig, run_dir: str | Path) -> None:
    """Before Hydra writes into the run directory: check_resumed_config for a composed config (with its
    `hydra` key) that resumes a state holding a run config, and check_saved_state. Anything this cannot settle
    (a data directory not found, no state) is left to train(), which checks again."""
    from .data import resolve_data_dir
    resume = OmegaConf.select(cfg, "trainer.resume", default=False)
    try:
        state_dir = find_resume_dir(resume, Path(run_dir) / "state")
        if state_dir is None:  # nothing to compare with: the data files are not read (hashed) for nothing
            return
        data_dir = resolve_data_dir(cfg.data.dir)
        job_cfg = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"})
        record = run_record(job_cfg, data_file_hashes(job_cfg, data_dir))
    except (OSError, ValueError):
        return
    check_resumed_config(state_dir, record)
    check_saved_state(state_dir)


def check_saved_state(state_dir: Path) -> None:
    """The saved state read as train() will read it, its tensors memory-mapped rather than loaded: a state file
    that is not data (a planted pickle) or a damaged saved model is refused (CheckpointError, one line) before
    Hydra writes the run's .hydra/ files, so a refused resume leaves the run directory as it was."""
    from .checkpoints import loading_checkpoint
    from .train_state import load_trainer_state

    load_trainer_state(Path(state_dir) / "trainer_state.pt", mmap=True)
    with loading_checkpoint(Path(state_dir) / "model", what="trainer.resume: the saved model"):
        pass  # its cheap checks: file sizes, whole safetensors files, the vocabulary size


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict) and tree:
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def config_differences(saved: dict, new: dict) -> tuple[dict, dict]:
    """(refused, allowed): key -> (saved value, new value) for each setting that differs, data files
    compared by sha256. Keys only one side has (options added or removed since) are not compared."""
    old_flat = {**_flat(saved["config"]), **saved.get("data_sha256", {})}
    new_flat = {**_flat(new["config"]), **new["data_sha256"]}
    refused, allowed = {}, {}
    for key in sorted(old_flat.keys() & new_flat.keys()):
        if old_flat[key] == new_flat[key] or (_under(key, NOT_COMPARED) and key not in new["data_sha256"]):
            continue
        (allowed if _under(key, MAY_CHANGE) else refused)[key] = (old_flat[key], new_flat[key])
    for key in DATA_FILES_KEYS:  # a data file read by one run and not the other
        if (key in saved.get("data_sha256", {})) != (key in new["data_sha256"]):
            refused[key] = (_flat(saved["config"]).get(key), _flat(new["config"]).get(key))
    return refused, allowed


def _show(key: str, value) -> str:
    return f"sha256 {value[:12]}" if key in DATA_FILES_KEYS and isinstance(value, str) and len(value) == 64 \
        else json.dumps(value, ensure_ascii=False, default=str)


def check_resumed_config(state_dir: Path, record: dict) -> tuple[list, dict]:
    """(the saved run's history of changes, this resume's MAY_CHANGE differences: key -> [saved, new]) for
    `record` (the new run's). A difference in any other setting raises ConfigError, one line listing them."""
    saved = read_run_record(state_dir)
    if saved is None:
        log.warning("%s was saved before run configs were kept: the resumed settings are not compared", state_dir)
        return [], {}
    refused, allowed = config_differences(saved, record)
    if refused:
        listed = "; ".join(f"{k} {_show(k, old)} -> {_show(k, new)}" for k, (old, new) in refused.items())
        raise ConfigError(f"trainer.resume: {state_dir} was saved by a run with other settings ({listed}): resume "
                          "with the run's own settings, or start a new run in another hydra.run.dir")
    return list(saved.get("changes", [])), {k: [old, new] for k, (old, new) in allowed.items()}
