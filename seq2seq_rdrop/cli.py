"""What the command-line scripts share: every expected failure reaches the user as one `error: ...` line
on stderr with a non-zero exit status, not inside a traceback.

    python train.py trainer.batch_size=0      ->  error: trainer.batch_size=0: allowed values are integers >= 1
    python train.py data.dir=bad              ->  error: .../train.tsv:7: expected 2 tab-separated columns ...

Exit status: 1 a failure (data, checkpoint, NaN, ...), 2 a bad option, 130 interrupted. With
HYDRA_FULL_ERROR=1 Hydra's own report and the traceback are shown instead, as Hydra documents.

The Hydra callback `ValidateConfig` (conf/train.yaml: hydra.callbacks) checks the composed config
(config_checks.validate) before Hydra creates the run directory: a bad option leaves nothing behind.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from hydra.experimental.callback import Callback

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
_FULL_ERROR = {"requested": None}  # did the user set HYDRA_FULL_ERROR=1 (run_hydra_app sets it for itself)


class ConfigRejected(BaseException):
    """A ConfigError raised out of a Hydra callback. Hydra turns a callback's Exception into a warning
    and goes on (creating the run directory); a BaseException stops it. run_hydra_app reports it."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class ValidateConfig(Callback):
    """config_checks.validate on the composed config, before Hydra writes anything (run and multirun)."""

    @staticmethod
    def _validate(config) -> None:
        from .config_checks import ConfigError, validate

        try:
            validate(config)
        except ConfigError as e:
            raise ConfigRejected(e) from e

    @staticmethod
    def _check_run_dir(config) -> None:
        """A busy run directory, or one holding a run this one would overwrite, refused before Hydra writes
        its .hydra/ files into it (train() checks again, holding the lock)."""
        from omegaconf import OmegaConf

        from .checkpoints import CheckpointError
        from .config_checks import ConfigError
        from .run_config import precheck_resume
        from .run_dir import RunDirError, check_run_dir

        try:
            run_dir = OmegaConf.select(config, "hydra.run.dir")
            trainer = config.get("trainer") or {}
        except Exception:  # an interpolation only the job can resolve: train() checks
            return
        if run_dir:
            try:
                check_run_dir(run_dir, trainer.get("resume"), bool(trainer.get("overwrite")))
                precheck_resume(config, run_dir)
            except (RunDirError, ConfigError, CheckpointError) as e:
                raise ConfigRejected(e) from e

    def on_run_start(self, config, **kwargs) -> None:
        self._validate(config)
        self._check_run_dir(config)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._validate(config)  # the options shared by every job; each job checks its own again in train()


def full_error_requested() -> bool:
    if _FULL_ERROR["requested"] is not None:
        return _FULL_ERROR["requested"]
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def is_usage_error(e: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config_checks import ConfigError

    return isinstance(e, (ConfigError, HydraException, OmegaConfBaseException))


EXPECTED = (ValueError, OSError, RuntimeError, FloatingPointError, MemoryError, KeyError)


def one_line_error(e: BaseException, script: str = "train.py") -> str:
    """A Hydra/OmegaConf/our exception as one readable line. Exceptions of no expected kind (a bug) also
    name their type and how to see the traceback."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = e.__cause__ or e.__context__
    for err in (e, cause):
        if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and "not in struct" in str(err):
            key = getattr(err, "full_key", None) or str(err).split("'")[1]
            return f"unknown option {key!r} (python {script} --help lists the options)"
    text = " ".join(str(e).split("Config search path:")[0].split())
    if isinstance(e, KeyError) and len(e.args) == 1:
        text = f"missing key {e.args[0]!r}"
    text = text or type(e).__name__
    if cause is not None and type(e).__module__.startswith("hydra"):
        detail = " ".join(str(cause).split("\n")[0].split())
        if detail and detail not in text:
            text = f"{text} ({detail})"
    if not is_usage_error(e) and not isinstance(e, EXPECTED):
        text = f"{type(e).__name__}: {text} (HYDRA_FULL_ERROR=1 shows the traceback)"
    return text if len(text) <= 2000 else text[:1999] + "…"


@contextmanager
def report_errors(script: str):
    """Around a Hydra task function: in a single run, an exception becomes one `error:` line and the exit
    status (Hydra would print it inside its own traceback). In a multirun it is raised on to Hydra, which
    ends the sweep as it documents, and run_hydra_app reports it in one line."""
    try:
        yield
    except KeyboardInterrupt:
        if full_error_requested():
            raise
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        if full_error_requested() or _in_multirun():
            raise
        print(f"error: {one_line_error(e, script)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE if is_usage_error(e) else EXIT_FAILURE)


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


@contextmanager
def hydra_errors_raised():
    """HYDRA_FULL_ERROR=1 while Hydra runs: its errors reach the caller, to be reported in one line, instead of
    being printed by Hydra itself. The user's own setting is restored afterwards."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def run_hydra_app(app, script: str) -> int:
    """Call a @hydra.main function; turn every failure that leaves it (bad overrides, a config the
    ValidateConfig callback refuses, a multirun job's error) into one `error:` line. Returns the exit status."""
    _FULL_ERROR["requested"] = os.environ.get("HYDRA_FULL_ERROR") == "1"
    if _FULL_ERROR["requested"]:
        app()
        return 0
    try:
        with hydra_errors_raised():
            app()
    except ConfigRejected as e:
        print(f"error: {one_line_error(e.error, script)}", file=sys.stderr, flush=True)
        return EXIT_USAGE if is_usage_error(e.error) else EXIT_FAILURE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as e:
        print(f"error: {one_line_error(e, script)}", file=sys.stderr, flush=True)
        return EXIT_USAGE if is_usage_error(e) else EXIT_FAILURE
    finally:
        _FULL_ERROR["requested"] = None
    return 0
