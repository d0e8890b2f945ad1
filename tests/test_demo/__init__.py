# Copyright (c) mmprompt contributors. All rights reserved.
"""Tests of ``demo/``. The demo's modules import each other as a script's
siblings do (``python demo/gradio_demo.py`` puts ``demo/`` on
``sys.path``), so the tests put ``demo/`` there too."""
import os.path as osp
import sys

DEMO_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'demo')
if DEMO_DIR not in sys.path:
    sys.path.insert(0, DEMO_DIR)
