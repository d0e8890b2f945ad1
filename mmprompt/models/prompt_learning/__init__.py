# Copyright (c) mmprompt contributors. All rights reserved.
"""Prompt learning on a frozen CLIP (CoOp, CoCoOp, Tip-Adapter-F)."""
from .coop import CoCoOp, CoOp
from .learned import load_learned, save_learned
from .prompt_learner import PromptLearner
from .tip_adapter import TipAdapterF

__all__ = [
    'PromptLearner', 'CoOp', 'CoCoOp', 'TipAdapterF', 'save_learned',
    'load_learned'
]
