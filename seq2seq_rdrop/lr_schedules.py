"""The learning-rate schedules: LR_SCHEDULES maps each trainer.lr_schedule to the function that builds it
(its keys are the option's allowed values), and trainer.lr_decay_by_time's schedule, which follows the clock
as well as the steps. train_state.Optimisation.build picks one."""
from __future__ import annotations

import torch
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup


def constant_schedule(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then the peak rate to the end (total_steps is not needed)."""
    return get_constant_schedule_with_warmup(optimizer, warmup_steps)


# trainer.lr_schedule -> (optimizer, warm-up steps, total steps) -> its scheduler
LR_SCHEDULES = {
    "linear": get_linear_schedule_with_warmup,  # linear warm-up, then linear decay to 0 at the last step
    "constant": constant_schedule,
}


def linear_schedule_to_deadline(optimizer, warmup_ratio: float, total_steps: int, used_time_fraction):
    """Linear warm-up, then linear decay to 0, over progress = the larger of steps done / total_steps
    and used_time_fraction() (the share of trainer.max_minutes spent). A run that the clock stops
    before total_steps thus still ends annealed, on any machine (trainer.lr_decay_by_time)."""
    def factor(step: int) -> float:
        progress = min(max(step / total_steps, used_time_fraction()), 1.0)
        if progress < warmup_ratio:
            return progress / warmup_ratio
        return (1.0 - progress) / max(1.0 - warmup_ratio, 1e-12)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
