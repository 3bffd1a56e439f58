"""What machine a benchmark ran on, for the reports beside its numbers."""
from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path


def processor_name() -> str:
    """The CPU model (platform.processor() is often empty on Linux; /proc/cpuinfo has it)."""
    if platform.processor():
        return platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine_lines(device) -> list[str]:
    """Command, date, CPU, library versions, threads, device and load: the header of a benchmark report."""
    import torch
    import transformers

    lines = [
        # "python", not sys.executable: no machine paths in committed reports
        f"command: `{shlex.join(['python', *getattr(sys, 'orig_argv', [sys.executable, *sys.argv])[1:]])}`",
        f"date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"machine: processor={processor_name()} ({platform.machine()}), os.cpu_count()={os.cpu_count()}, "
        f"{platform.platform()}",
        f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"torch threads {torch.get_num_threads()}",
        f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
    ]
    try:
        lines.append(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass
    return lines
