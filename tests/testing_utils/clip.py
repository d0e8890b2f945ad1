# Copyright (c) mmprompt contributors. All rights reserved.
"""Tiny random-weight CLIPs, OpenAI-format checkpoints and a local HTTP
server for the zero-shot tests (``from testing_utils import clip``)."""
import hashlib
import http.server
import io
import os.path as osp
import threading
from typing import Dict, Optional

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs')

# Width 64 (one head per 64 channels, OpenAI's rule), 2 layers, 64 px
# images in 32 px patches, a 32-wide joint space.
TINY = dict(img_size=64, patch_size=32, width=64, layers=2, embed_dim=32)


def tiny_model_overrides(img_size: int = TINY['img_size']) -> dict:
    """``model`` overrides that shrink a real CLIP config to TINY."""
    width = TINY['width']
    return dict(
        vision_backbone=dict(
            arch=dict(
                _delete_=True,
                embed_dims=width,
                num_layers=TINY['layers'],
                num_heads=width // 64,
                feedforward_channels=4 * width),
            img_size=img_size,
            patch_size=TINY['patch_size']),
        text_backbone=dict(
            embed_dims=width, num_layers=TINY['layers'],
            num_heads=width // 64),
        proj_dims=TINY['embed_dim'])


def openai_state_dict(
        seed: int = 0,
        img_size: int = TINY['img_size']) -> Dict[str, torch.Tensor]:
    """A random CLIP in OpenAI's key layout, made by open_clip."""
    import open_clip
    torch.manual_seed(seed)
    width = TINY['width']
    model = open_clip.model.CLIP(
        embed_dim=TINY['embed_dim'],
        vision_cfg=dict(
            layers=TINY['layers'],
            width=width,
            head_width=64,
            patch_size=TINY['patch_size'],
            image_size=img_size),
        text_cfg=dict(
            context_length=77,
            vocab_size=49408,
            width=width,
            heads=width // 64,
            layers=TINY['layers']),
        quick_gelu=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def openai_checkpoint_bytes(seed: int = 0,
                            img_size: int = TINY['img_size']) -> bytes:
    """The bytes of a saved random OpenAI-layout state dict."""
    buffer = io.BytesIO()
    torch.save(openai_state_dict(seed, img_size), buffer)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_converted_checkpoint(path: str,
                               seed: int = 0,
                               img_size: int = TINY['img_size']) -> str:
    """Convert a random OpenAI-layout CLIP with our converter and save it."""
    from mmprompt.converters import convert_openai_clip
    converted, meta = convert_openai_clip(openai_state_dict(seed, img_size))
    torch.save(dict(state_dict=converted, meta=meta), path)
    return path


def write_tiny_config(path: str,
                      base: str,
                      img_size: int = TINY['img_size'],
                      model: Optional[dict] = None,
                      extra: str = '') -> str:
    """A leaf config: ``base`` (under configs/) shrunk to TINY.

    Args:
        path (str): Where to write it.
        base (str): A config path relative to ``configs/``.
        img_size (int): Image size of the tiny model and its pipeline.
        model (dict, optional): More ``model`` overrides.
        extra (str): More config lines, appended.
    """
    base_path = osp.join(CONFIGS, base)
    overrides = dict(tiny_model_overrides(img_size), **(model or {}))
    text = (f'_base_ = [{base_path!r}]\n'
            f'model = dict(**{overrides!r})\n')
    if 'cifar' in base or 'in1k' in base:
        order = ", array_order='rgb'" if 'cifar' in base else ''
        text += (
            'test_dataloader = dict(num_workers=0, batch_size=32, dataset='
            f"dict(pipeline=[dict(type='CLIPPreprocess', scale={img_size}"
            f"{order}), dict(type='PackInputs')]))\n")
    with open(path, 'w') as f:
        f.write(text + extra)
    return path


class FileServer:
    """Serve byte strings over HTTP on 127.0.0.1, in a thread.

    Args:
        files (dict): URL path (``'/a/b.pt'``) -> bytes.
        truncate (dict, optional): URL path -> number of bytes sent before
            the connection is closed (the header announces all of them).
    """

    def __init__(self,
                 files: Dict[str, bytes],
                 truncate: Optional[Dict[str, int]] = None) -> None:
        self.files = files
        self.truncate = truncate or {}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(
                    data[:server.truncate.get(self.path, len(data))])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f'http://{host}:{port}{path}'

    def __enter__(self) -> 'FileServer':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
