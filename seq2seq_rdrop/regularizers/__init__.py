"""Regularizers against dropout inconsistency and exposure bias, chosen by `regularizer=NAME`
(conf/regularizer/NAME.yaml names the class with `_target_`)."""
from .base import Regularizer, token_cross_entropy
from .baseline import Baseline
from .grad_penalty import GradPenalty
from .random_replace import RandomReplace
from .rdrop import RDrop
from .semi_supervised import SemiSupervised

__all__ = ["Regularizer", "Baseline", "RDrop", "RandomReplace", "GradPenalty", "SemiSupervised",
           "token_cross_entropy"]
