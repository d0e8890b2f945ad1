# Copyright (c) mmprompt contributors. All rights reserved.
"""Prompt learning on a frozen CLIP (CoOp, CoCoOp, Tip-Adapter-F)."""
from .coop import CoCoOp, CoOp
from .learned import load_learned, save_learned
from .prompt_learner import PromptLearner

__all__ = ['PromptLearner', 'CoOp', 'CoCoOp', 'save_learned', 'load_learned']
