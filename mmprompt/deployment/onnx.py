# Copyright (c) mmprompt contributors. All rights reserved.
"""ONNX export of CLIP and RAM, checked with onnxruntime.

``images`` inputs are RGB float32 in ``[0, 255]``, ``(N, 3, H, W)``, resized
as the model's preprocessing does (in ``metadata_props``); the mean / std
is in the graph and ``N`` is dynamic.
"""
import contextlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.utils.errors import InvalidInputError, UserError
from mmprompt.utils.io import check_output, get_umask, write_failure
from mmprompt.utils.options import DEFAULT_OPSET, EXPORT_KINDS
# Protobuf's limit; bigger models keep their weights beside the graph.
MAX_INLINE_BYTES = 2**31 - 2**26


class ExportError(UserError, ValueError):
    """A model or setting that cannot be exported."""


def require_deploy() -> None:
    """Raise a clear error when the ``deploy`` extra is missing."""
    missing = []
    for name in ('onnx', 'onnxruntime', 'onnxscript'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f'ONNX export needs {", ".join(missing)}: '
                          "pip install 'mmprompt[deploy]'")


class _ImageInput(nn.Module):
    """Folds a model's mean / std normalisation into the graph."""
    input_names = ('images', )

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        preprocessor = model.data_preprocessor
        mean = getattr(preprocessor, 'mean', None)
        std = getattr(preprocessor, 'std', None)
        if mean is None or std is None:
            raise ExportError(
                f'{type(model).__name__} has no mean / std in its data '
                'preprocessor: cannot fold the image normalisation')
        self.register_buffer('mean', mean.detach().float().view(1, 3, 1, 1))
        self.register_buffer('std', std.detach().float().view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def example_inputs(self, batch: int = 2) -> Tuple[torch.Tensor, ...]:
        """Random images of the right shape, ``(batch, 3, H, W)``."""
        return (torch.rand(batch, 3, *self.image_size) * 255, )


def _image_size(model: nn.Module) -> Tuple[int, int]:
    """``(H, W)`` of the images a CLIP or RAM model takes."""
    encoder = getattr(model, 'visual', None) or getattr(
        model, 'visual_encoder', None)
    # MMPreTrain's ViT keeps img_size; its Swin only the patch embedding's.
    size = getattr(encoder, 'img_size', None) or getattr(
        getattr(encoder, 'patch_embed', None), 'init_input_size', None)
    if size is None:
        raise ExportError(f'{type(model).__name__}: unknown image size')
    size = (size, size) if isinstance(size, int) else tuple(size)
    return int(size[0]), int(size[1])


def _check_type(model: nn.Module, kind: str, cls: type, hint: str) -> None:
    if not isinstance(model, cls):
        raise ExportError(f'cannot export {type(model).__name__} as '
                          f'{kind!r}: it needs a {cls.__name__} ({hint})')


class ImageTowerExport(_ImageInput):
    """CLIP's image tower: ``images -> image_feats`` (not normalised).

    Args:
        model (CLIP): A CLIP (or :class:`CLIPZeroShot`) model.
    """
    kind = 'image'
    output_names = ('image_feats', )

    def __init__(self, model: nn.Module) -> None:
        from mmprompt.models.clip import CLIP
        _check_type(model, self.kind, CLIP, 'a CLIP config')
        super().__init__(model)
        self.model = model
        self.image_size = _image_size(model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.extract_image_feat(self.normalise(images))

    def metadata(self) -> Dict[str, str]:
        args = self.model.preprocess_args
        return dict(
            image_size=json.dumps(list(self.image_size)),
            resize_mode=args['resize_mode'],
            interpolation=args['interpolation'])


class TextTowerExport(nn.Module):
    """CLIP's text tower: ``token_ids (N, L) -> text_feats``.

    Args:
        model (CLIP): A CLIP (or :class:`CLIPZeroShot`) model.
    """
    kind = 'text'
    input_names = ('token_ids', )
    output_names = ('text_feats', )

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from mmprompt.models.clip import CLIP
        _check_type(model, self.kind, CLIP, 'a CLIP config')
        self.model = model

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.model.extract_text_feat(token_ids)

    @property
    def full_rows(self) -> bool:
        """bool: Only full-length rows (SigLIP's bidirectional tower)."""
        from mmprompt.models.clip.zero_shot import is_causal
        return not is_causal(self.model.text_encoder)

    def example_inputs(self,
                       batch: int = 2,
                       length: int = 8) -> Tuple[torch.Tensor, ...]:
        """Token ids of ``batch`` prompts of ``length`` tokens."""
        texts = [' '.join(['photo'] * (length - 2))] * batch
        ids = self.model.tokenize(texts)
        return (ids if self.full_rows else ids[:, :length], )

    def metadata(self) -> Dict[str, str]:
        return dict(context_length=str(self.model.context_length))


class ClassifierExport(ImageTowerExport):
    """A zero-shot classifier: ``images -> probs``, prototypes folded in.

    Args:
        model (CLIPZeroShot): A classifier with categories or prototypes.
    """
    kind = 'classifier'
    output_names = ('probs', )

    def __init__(self, model: nn.Module) -> None:
        from mmprompt.models.clip import CLIPZeroShot
        _check_type(model, self.kind, CLIPZeroShot, 'a zero-shot CLIP config')
        super().__init__(model)
        try:
            with torch.no_grad():
                model.get_prototypes()
        except RuntimeError as e:
            raise ExportError(f'cannot export the classifier: {e}') from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = F.normalize(super().forward(images), dim=-1)
        logits = self.model.compute_class_logits(feats)
        if self.model.score_activation == 'sigmoid':  # SigLIP's own scores
            return logits.sigmoid()
        return logits.softmax(dim=-1)

    def metadata(self) -> Dict[str, str]:
        meta = super().metadata()
        if self.model.categories is not None:
            meta['categories'] = json.dumps(list(self.model.categories))
        return meta


class LearnedPromptExport(ImageTowerExport):
    """A CoOp classifier: ``images -> probs``, its text features folded in.

    Args:
        model (CoOp): A CoOp model with its learned context loaded.
    """
    kind = 'classifier'
    output_names = ('probs', )

    def __init__(self, model: nn.Module) -> None:
        from mmprompt.models.clip import CLIP
        _ImageInput.__init__(self, model)
        if not isinstance(getattr(model, 'clip', None), CLIP):
            raise ExportError(f'{type(model).__name__} has no CLIP')
        self.model = model
        self.image_size = _image_size(model.clip)
        with torch.no_grad():
            feats = model.extract_text_feat().detach().float().clone()
        self.register_buffer('text_feats', feats)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.model.extract_image_feat(self.normalise(images))
        scale = self.model.clip.logit_scale.exp()
        return (scale * feats @ self.text_feats.t()).softmax(dim=-1)

    def metadata(self) -> Dict[str, str]:
        meta = super().metadata()
        meta['categories'] = json.dumps(list(self.model.categories))
        return meta


class TaggerExport(_ImageInput):
    """RAM / RAM++ tagging: ``images -> probs, thresholds``; tag ``k`` is
    selected where ``probs[:, k] > thresholds[k]`` (deleted tags: 1).

    Args:
        model (RAM): A RAM model (open-set: its current categories).
    """
    kind = 'tagging'
    output_names = ('probs', 'thresholds')

    def __init__(self, model: nn.Module) -> None:
        from mmprompt.models.ram import RAM
        _check_type(model, self.kind, RAM, 'a RAM or RAM++ config')
        super().__init__(model)
        self.model = model
        self.image_size = _image_size(model)
        vocabulary = model.vocabulary
        thresholds = vocabulary.thresholds.detach().float().clone()
        deleted = list(vocabulary.deleted)
        if deleted:
            thresholds[deleted] = 1.0
        self.register_buffer('thresholds', thresholds)

    def forward(self,
                images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        probs = self.model.compute_logits(self.normalise(images)).sigmoid()
        return probs, self.thresholds

    def metadata(self) -> Dict[str, str]:
        meta = dict(image_size=json.dumps(list(self.image_size)))
        english = self.model.vocabulary.names
        if english is not None:
            meta['tags'] = json.dumps(list(english), ensure_ascii=False)
        return meta


WRAPPERS = dict(
    image=ImageTowerExport,
    text=TextTowerExport,
    classifier=ClassifierExport,
    tagging=TaggerExport)


def build_export_module(model: nn.Module, kind: str) -> nn.Module:
    """The wrapper (in eval mode) whose forward is exported.

    Args:
        model (nn.Module): A built model in eval mode.
        kind (str): One of ``EXPORT_KINDS``.
    """
    if kind not in WRAPPERS:
        raise ExportError(f'unknown export {kind!r}; choose one of '
                          f'{", ".join(EXPORT_KINDS)}')
    from mmprompt.models.prompt_learning import CoCoOp, CoOp
    if isinstance(model, CoCoOp):
        raise ExportError(
            'cannot export CoCoOp: its prompts depend on each image; export '
            "its CLIP's image and text towers instead")
    if isinstance(model, CoOp):
        if kind != 'classifier':
            raise ExportError(f'cannot export CoOp as {kind!r}: a learned '
                              'prompt exports as a classifier')
        return LearnedPromptExport(model).eval()
    return WRAPPERS[kind](model).eval()


def default_kind(model: nn.Module) -> str:
    """The export a model gets when none is asked for."""
    from mmprompt.models.clip import CLIPZeroShot
    from mmprompt.models.prompt_learning import CoOp
    from mmprompt.models.ram import RAM
    if isinstance(model, RAM):
        return 'tagging'
    if isinstance(model, CoOp):
        return 'classifier'
    if isinstance(model, CLIPZeroShot) and (model.categories is not None or
                                            model.text_prototypes is not None):
        return 'classifier'
    raise ExportError(
        f'say what to export from {type(model).__name__}: --kind '
        f'{" / ".join(EXPORT_KINDS)} (classifier needs categories)')


def _window_reverse(windows: torch.Tensor, H: int, W: int,
                    window_size: int) -> torch.Tensor:
    """MMPreTrain's ``ShiftWindowMSA.window_reverse`` without its
    ``int(batch / ...)``, which fixes the batch size of a traced graph."""
    x = windows.view(-1, H // window_size, W // window_size, window_size,
                     window_size, windows.size(-1))
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, windows.size(-1))


class _FixedShiftMask:
    """``ShiftWindowMSA.get_attn_mask`` of one module, computed once.

    MMPreTrain builds the mask in every forward (about 660 ONNX nodes per
    shifted block, most of a Swin-L graph), though it depends only on
    Python ints. The first, eager call keeps it as a non-persistent buffer;
    traced calls read it, so the graph holds it as a constant.
    """

    def __init__(self, module: nn.Module, compute) -> None:
        self.module, self.compute, self.key = module, compute, None

    def __call__(self, hw_shape, window_size, shift_size, device=None):
        key = (tuple(hw_shape), window_size, shift_size)
        if key != self.key:  # the first, eager call (or a new size)
            mask = self.compute(hw_shape, window_size, shift_size, device)
            if mask is None:
                return None
            self.module.register_buffer(
                '_export_attn_mask', mask, persistent=False)
            self.key = key
        return self.module._export_attn_mask

    def restore(self) -> None:
        if '_export_attn_mask' in self.module._buffers:
            del self.module._buffers['_export_attn_mask']
        del self.module.get_attn_mask


@contextlib.contextmanager
def export_mode(module: nn.Module) -> Iterator[None]:
    """Paths that trace into one small graph for any batch size.

    The same values with a symbolic batch: RAM's tagging head decodes all
    queries at once (its CPU chunks depend on the batch), Swin windows are
    merged by :func:`_window_reverse`, shifted-window masks are constants
    (:class:`_FixedShiftMask`), and autograd is on so that the label
    queries' ``TensorCache`` bakes nothing in. Restored on exit.

    Args:
        module (nn.Module): A wrapper of :func:`build_export_module`.
    """
    from mmpretrain.models.utils.attention import ShiftWindowMSA
    heads = [m for m in module.modules() if hasattr(m, 'cpu_chunk_rows')]
    saved = [h.cpu_chunk_rows for h in heads]
    shifts = [m for m in module.modules() if isinstance(m, ShiftWindowMSA)]
    masks = []
    try:
        for head in heads:
            head.cpu_chunk_rows = None
        for shift in shifts:
            shift.window_reverse = _window_reverse
            masks.append(_FixedShiftMask(shift, shift.get_attn_mask))
            shift.get_attn_mask = masks[-1]
        if shifts:
            with torch.no_grad():
                module(*module.example_inputs(1))
        with torch.enable_grad():
            yield
    finally:
        for head, rows in zip(heads, saved):
            head.cpu_chunk_rows = rows
        for shift in shifts:
            del shift.window_reverse
        for mask in masks:
            mask.restore()


def _dynamic_shapes(module: nn.Module) -> dict:
    batch = torch.export.Dim('batch', min=1, max=1024)
    if module.kind != 'text':
        return dict(images={0: batch})
    if module.full_rows:
        return dict(token_ids={0: batch})
    length = torch.export.Dim('length', min=2, max=module.model.context_length)
    return dict(token_ids={0: batch, 1: length})


def _param_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def supported_opsets() -> Tuple[int, int]:
    """``(low, high)``: the opsets ``torch.onnx.export(dynamo=True)``
    writes, from its torchlib's (its down-converter may fail below) up."""
    from torch.onnx import _constants
    try:
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET
    except ImportError:  # another layout: the default is known to work
        TORCHLIB_OPSET = DEFAULT_OPSET
    return TORCHLIB_OPSET, getattr(_constants, 'ONNX_MAX_OPSET',
                                   TORCHLIB_OPSET)


def check_opset(opset: int) -> int:
    """``opset``, or :class:`ExportError` if the exporter cannot write it."""
    low, high = supported_opsets()
    if not low <= opset <= high:
        raise ExportError(
            f'opset {opset} is not supported: torch {torch.__version__} '
            f'exports opsets {low} to {high} (default {DEFAULT_OPSET})')
    return opset


def export_onnx(module: nn.Module,
                path: str,
                opset: int = DEFAULT_OPSET,
                force: bool = False,
                metadata: Optional[Dict[str, str]] = None) -> List[str]:
    """Export a wrapper of :func:`build_export_module` to an ONNX file.

    Written in a temporary folder beside ``path`` and moved into place (with
    its ``.data`` weights over 2 GB), so a failure leaves nothing behind.

    Args:
        module (nn.Module): The wrapper.
        path (str): The ``.onnx`` file.
        opset (int): Within :func:`supported_opsets`. Defaults to 18.
        force (bool): Overwrite existing files. Defaults to False.
        metadata (dict, optional): More ``metadata_props``. Defaults to None.
    """
    require_deploy()
    check_opset(opset)
    if not path.endswith('.onnx'):
        raise InvalidInputError(f'{path}: the output must end with .onnx')
    external = _param_bytes(module) > MAX_INLINE_BYTES
    outputs = [path] + ([path + '.data'] if external else [])
    check_outputs(outputs, force)
    props = dict(
        mmprompt_kind=module.kind,
        mmprompt_model=type(module.model).__name__,
        inputs=json.dumps(list(module.input_names)),
        outputs=json.dumps(list(module.output_names)))
    props.update(module.metadata())
    props.update(metadata or {})
    with export_mode(module):
        program = torch.onnx.export(
            module,
            module.example_inputs(),
            input_names=list(module.input_names),
            output_names=list(module.output_names),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(module),
            verbose=False)
    written = program.model.opset_imports.get('')
    if written != opset:
        raise ExportError(f'the exporter wrote opset {written}, not the '
                          f'{opset} asked for; nothing was written')
    program.model.metadata_props.update(props)
    parent = osp.dirname(osp.abspath(path))
    tmp_dir = tempfile.mkdtemp(prefix='.onnx-export-', dir=parent)
    try:
        tmp = osp.join(tmp_dir, osp.basename(path))
        try:
            program.save(tmp, external_data=external)
        except OSError as e:  # a full disk: one line, old files intact
            raise write_failure(path, e, osp.exists(path)) from None
        for out in outputs:
            written = osp.join(tmp_dir, osp.basename(out))
            os.chmod(written, 0o666 & ~get_umask())
            os.replace(written, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return outputs


def check_outputs(paths: Sequence[str],
                  force: bool,
                  inputs: Sequence[str] = ()) -> None:
    """:func:`~mmprompt.utils.io.check_output` each path; make the folder."""
    for out in paths:
        check_output(out, force=force, inputs=inputs)
    os.makedirs(osp.dirname(osp.abspath(paths[0])), exist_ok=True)


def onnx_session(path: str, threads: Optional[int] = None):
    """An onnxruntime CPU session of an exported file.

    Args:
        path (str): The ``.onnx`` file.
        threads (int, optional): Intra-op threads. Defaults to None (auto).
    """
    require_deploy()
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def run_onnx(session, module: nn.Module,
             inputs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Run an onnxruntime session on torch inputs; torch outputs."""
    feeds = {
        name: t.detach().cpu().numpy()
        for name, t in zip(module.input_names, inputs)
    }
    return [torch.from_numpy(out) for out in session.run(None, feeds)]


def max_abs_diffs(names: Sequence[str], expected: Sequence[torch.Tensor],
                  got: Sequence[torch.Tensor]) -> Dict[str, float]:
    """Max absolute difference of each output, after a shape check.

    Args:
        names (Sequence[str]): The outputs' names.
        expected (Sequence[torch.Tensor]): PyTorch's outputs.
        got (Sequence[torch.Tensor]): onnxruntime's outputs.
    """
    diffs = {}
    for name, ref, out in zip(names, expected, got):
        if tuple(ref.shape) != tuple(out.shape):
            raise ExportError(f'{name}: onnxruntime gives shape '
                              f'{tuple(out.shape)}, PyTorch '
                              f'{tuple(ref.shape)}')
        diffs[name] = (ref.float() - out.float()).abs().max().item()
    return diffs


@torch.no_grad()
def compare_onnx(session, module: nn.Module,
                 inputs: Sequence[torch.Tensor]) -> Dict[str, float]:
    """:func:`max_abs_diffs` of PyTorch vs onnxruntime.

    Args:
        session: From :func:`onnx_session`.
        module (nn.Module): The exported wrapper.
        inputs (Sequence[torch.Tensor]): Its inputs.
    """
    expected = module(*inputs)
    if isinstance(expected, torch.Tensor):
        expected = (expected, )
    return max_abs_diffs(module.output_names, expected,
                         run_onnx(session, module, inputs))
