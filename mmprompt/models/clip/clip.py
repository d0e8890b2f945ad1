# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP on MMPreTrain: a feature extractor and a zero-shot classifier.

`CLIP <https://arxiv.org/abs/2103.00020>`_ after OpenAI's ``clip/model.py``
(MIT licence); prompt ensembling after open_clip (MIT licence).
"""
import copy
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmprompt.models.utils.data_preprocessor import build_cls_preprocessor
from mmprompt.registry import MODELS, TOKENIZER
from mmprompt.utils.scores import check_finite_scores
from mmprompt.utils.image_io import check_resize_args
from .prompts import (check_categories, resolve_categories,
                      resolve_descriptions, resolve_templates)
from .vocabulary import ClassVocabulary
from .zero_shot import build_text_prototypes_sharded

# OpenAI's normalisation, for RGB images in [0, 255].
CLIP_MEAN = tuple(255 * m for m in (0.48145466, 0.4578275, 0.40821073))
CLIP_STD = tuple(255 * s for s in (0.26862954, 0.26130258, 0.27577711))

#: Image tower ``out_type`` values that give one pooled ``(N, C)`` feature.
POOLED_OUT_TYPES = ('cls_token', 'attn_pool')


def _check_image_preprocess(cfg: Optional[dict]) -> Dict[str, str]:
    """A model's ``image_preprocess``, checked, with OpenAI's defaults."""
    args = dict(resize_mode='shortest', interpolation='bicubic')
    unknown = sorted(set(cfg or {}) - set(args))
    if unknown:
        raise ValueError(f'image_preprocess takes {sorted(args)}, not '
                         f'{unknown}')
    args.update(cfg or {})
    check_resize_args(**args)
    return args


#: How ``pred_score`` is made from the class logits.
SCORE_ACTIVATIONS = ('softmax', 'sigmoid')


def logits_to_samples(logits: torch.Tensor,
                      data_samples: Optional[List[DataSample]] = None,
                      activation: str = 'softmax') -> List[DataSample]:
    """Fill ``pred_score`` (softmax or sigmoid of ``logits``) and
    ``pred_label`` of each sample (new ones if None); the single-label result
    of every classifier here. Non-finite logits are refused."""
    if activation not in SCORE_ACTIVATIONS:
        raise ValueError(f'activation must be one of {SCORE_ACTIVATIONS}, '
                         f'got {activation!r}')
    logits = check_finite_scores(logits)
    scores = logits.sigmoid() if activation == 'sigmoid' else \
        logits.softmax(dim=-1)
    labels = logits.argmax(dim=-1, keepdim=True)
    if data_samples is None:
        data_samples = [DataSample() for _ in range(scores.size(0))]
    for sample, score, label in zip(data_samples, scores, labels):
        sample.set_pred_score(score).set_pred_label(label)
    return data_samples


@MODELS.register_module()
class CLIP(BaseModel):
    """`CLIP <https://arxiv.org/abs/2103.00020>`_ image and text encoders.

    A feature extractor (inference only); :class:`CLIPZeroShot` predicts.

    Args:
        vision_backbone (dict): Config of the image tower. It returns a tuple
            ending in the pooled ``(N, C)`` feature, has ``embed_dims`` and
            an ``out_type`` in :data:`POOLED_OUT_TYPES` or a ``pooled_by``.
            OpenAI's ViT needs ``norm_cfg=dict(type='LN', eps=1e-5)`` and
            ``act_cfg=dict(type='mmpretrain.QuickGELU')`` in ``layer_cfgs``.
        text_backbone (dict): Config of the text tower; its ``out_dims``
            defaults to ``proj_dims`` and must equal it.
        tokenizer (dict, optional): Defaults to CLIP's ``CLIPTokenizer``.
        proj_dims (int): Width of the joint embedding space. Defaults to 512.
        visual_proj_bias (bool): Whether ``visual_proj`` has a bias
            (PE-Core). Defaults to False.
        data_preprocessor (dict | nn.Module, optional): See
            ``build_cls_preprocessor``. Defaults to None.
        image_preprocess (dict, optional): ``resize_mode`` and
            ``interpolation`` of :class:`~mmprompt.datasets.CLIPPreprocess`,
            e.g. ``dict(resize_mode='squash')`` for DFN. Defaults to None
            (OpenAI's: short side bicubic, centre crop).
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    default_image_preprocess: Dict[str, str] = dict(
        resize_mode='shortest', interpolation='bicubic')
    #: Mean and std of RGB in [0, 255] of the default data preprocessor.
    image_mean: Tuple[float, ...] = CLIP_MEAN
    image_std: Tuple[float, ...] = CLIP_STD
    #: The tokenizer built when the config names none (None: none built).
    default_tokenizer: Optional[dict] = dict(type='CLIPTokenizer')
    #: Whether ``visual_proj`` maps the image feature to the joint space.
    project_image = True
    #: Initial ``logit_bias`` added to every logit (SigLIP); None: no bias.
    logit_bias_init: Optional[float] = None

    def __init__(self,
                 vision_backbone: dict,
                 text_backbone: dict,
                 tokenizer: Optional[dict] = None,
                 proj_dims: int = 512,
                 visual_proj_bias: bool = False,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 image_preprocess: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_preprocessor(
            data_preprocessor, self.image_mean, self.image_std)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)

        self.visual = MODELS.build(copy.deepcopy(vision_backbone))
        out_type = getattr(self.visual, 'out_type', 'cls_token')
        if getattr(self.visual, 'pooled_by', None) is None and \
                out_type not in POOLED_OUT_TYPES:
            raise ValueError('the image tower must pool its tokens (out_type '
                             f'in {POOLED_OUT_TYPES}), got {out_type!r}')
        if self.project_image:
            self.visual_proj = nn.Linear(
                self.visual.embed_dims, proj_dims, bias=visual_proj_bias)
        elif self.visual.embed_dims != proj_dims:
            raise ValueError(f'the image tower gives {self.visual.embed_dims}'
                             f' channels, proj_dims is {proj_dims}')
        else:
            self.visual_proj = nn.Identity()

        text_cfg = copy.deepcopy(text_backbone)
        text_cfg.setdefault('out_dims', proj_dims)
        if text_cfg['out_dims'] != proj_dims:
            raise ValueError(f"text_backbone out_dims ({text_cfg['out_dims']})"
                             f' differs from proj_dims ({proj_dims})')
        self.text_encoder = MODELS.build(text_cfg)

        tokenizer = tokenizer or self.default_tokenizer
        self.tokenizer = None if tokenizer is None else TOKENIZER.build(
            copy.deepcopy(tokenizer))
        self.proj_dims = proj_dims
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.image_preprocess = _check_image_preprocess(
            dict(self.default_image_preprocess, **(image_preprocess or {})))
        self.logit_bias = None if self.logit_bias_init is None else \
            nn.Parameter(torch.tensor(self.logit_bias_init))

    #: For :func:`~mmprompt.models.utils.compile_model`; prompt batches vary
    #: in length, so the text tower is not compiled.
    compile_modules = ('visual', )
    text_compile_modules: Tuple[str, ...] = ()
    #: For :func:`~mmprompt.models.utils.apply_precision`; projections,
    #: ``logit_scale`` and prototypes stay fp32.
    low_precision_modules = ('visual', 'text_encoder.resblocks')

    @property
    def preprocess_args(self) -> dict:
        """dict: Arguments of the :class:`~mmprompt.datasets.CLIPPreprocess`
        that makes this model's input."""
        return dict(
            scale=int(self.visual.img_size[0]), **self.image_preprocess)

    @property
    def pad_id(self) -> int:
        """int: The id that pads token rows (the tokenizer's, or 0)."""
        return getattr(self.tokenizer, 'pad_id', 0)

    @property
    def context_length(self) -> int:
        """int: Longest row of token ids the text tower accepts."""
        return self.text_encoder.context_length

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'predict') -> Union[torch.Tensor, list]:
        """The MMEngine entry point, for inference only.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(N, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill.
                Defaults to None.
            mode (str): ``'predict'`` (:meth:`predict`) or ``'tensor'``
                (:meth:`extract_image_feat`). Defaults to ``'predict'``.

        Returns:
            list | torch.Tensor: Depends on ``mode``.
        """
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_image_feat(inputs)
        if mode == 'loss':
            raise NotImplementedError(
                f'{type(self).__name__} is inference only: the weights are '
                "frozen and mode='loss' is not supported")
        raise ValueError(f"invalid mode {mode!r}; use 'predict' or 'tensor'")

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """OpenAI's ``encode_image``: ``images`` ``(N, 3, H, W)`` to
        ``(N, proj_dims)`` features, not normalised."""
        return self.visual_proj(self.visual(images)[-1])

    def extract_text_feat(self, texts: torch.Tensor) -> torch.Tensor:
        """OpenAI's ``encode_text``: token ids ``texts`` ``(N, L)`` to
        ``(N, proj_dims)`` features, not normalised."""
        return self.text_encoder(texts)

    def extract_feat(
        self,
        images: Optional[torch.Tensor] = None,
        texts: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Embed images, token ids, or both.

        Args:
            images (torch.Tensor, optional): ``(N, 3, H, W)``.
                Defaults to None.
            texts (torch.Tensor, optional): Token ids, ``(M, L)``.
                Defaults to None.

        Returns:
            torch.Tensor | tuple: One or ``(image_feats, text_feats)``.
        """
        if images is None and texts is None:
            raise ValueError('pass images, texts or both')
        if texts is None:
            return self.extract_image_feat(images)
        if images is None:
            return self.extract_text_feat(texts)
        return self.extract_image_feat(images), self.extract_text_feat(texts)

    def compute_similarity(self, images: torch.Tensor,
                           texts: torch.Tensor) -> torch.Tensor:
        """``(N, M)`` cosines of ``images`` ``(N, 3, H, W)`` and token ids
        ``texts`` ``(M, L)``."""
        image_feats, text_feats = self.extract_feat(images, texts)
        return (F.normalize(image_feats, dim=-1)
                @ F.normalize(text_feats, dim=-1).t())

    def scale_similarity(self, similarity: torch.Tensor) -> torch.Tensor:
        """``logit_scale.exp() * similarity (+ logit_bias)``, any shape."""
        logits = self.logit_scale.exp() * similarity
        if self.logit_bias is not None:
            logits = logits + self.logit_bias
        return logits

    def compute_logits(self, images: torch.Tensor,
                       texts: torch.Tensor) -> torch.Tensor:
        """``(N, M)`` logits (:meth:`scale_similarity`) of ``images`` and
        ``texts``, as for :meth:`compute_similarity`."""
        return self.scale_similarity(self.compute_similarity(images, texts))

    def tokenize(self,
                 texts: Union[str, Sequence[str]],
                 truncate: bool = False) -> torch.Tensor:
        """Token ids of ``texts`` for the text tower.

        Args:
            texts (str | Sequence[str]): One text or several.
            truncate (bool): Cut texts longer than the context instead of
                raising ``ValueError``. Defaults to False.

        Returns:
            torch.Tensor: ``(N, context_length)`` long tensor on the CPU.
        """
        if self.tokenizer is None:
            raise RuntimeError(f'{type(self).__name__} has no tokenizer: '
                               'configure one (tokenizer=dict(...))')
        return self.tokenizer(
            texts, context_length=self.context_length, truncate=truncate)

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None) -> list:
        """Implemented by subclasses; :class:`CLIP` extracts features."""
        raise NotImplementedError(
            f'{type(self).__name__} only extracts features; use a subclass '
            'that predicts, such as CLIPZeroShot')


@MODELS.register_module()
class CLIPZeroShot(CLIP):
    """Zero-shot classification with CLIP's text prototypes and, optionally,
    Tip-Adapter's training-free cache of example images (`Zhang et al., 2022
    <https://arxiv.org/abs/2207.09519>`_); the scoring rule is
    :class:`~mmprompt.models.clip.vocabulary.ClassVocabulary`'s.

    ``predict`` takes a vocabulary from :meth:`build_vocabulary` or uses the
    model's default, built on first use or set by ``set_*``. Loading weights
    drops it (one built from categories is rebuilt; hand-set prototypes and
    examples must be set again); after other weight changes, call
    :meth:`set_categories`.

    Args:
        categories (str | Sequence[str], optional): See
            :func:`~mmprompt.models.clip.prompts.resolve_categories`.
            Defaults to None (set them before predicting).
        templates (str | Sequence[str]): See
            :func:`~mmprompt.models.clip.prompts.resolve_templates`.
            Defaults to ``'simple'`` (``'a photo of a {}.'``).
        descriptions (str | dict, optional): ``{name: text or texts}`` or a
            JSON file of it; over-long ones are truncated with a warning.
            Defaults to None.
        description_weight (float): Weight of a category's descriptions
            against its templates, in ``[0, 1]``. Defaults to 0.5.
        cache_alpha (float): Weight of the example cache. Defaults to 1.0.
        cache_beta (float): Sharpness of the cache. Defaults to 5.5.
        text_batch_size (int): Prompts per forward pass. Defaults to 1024.
        progress (bool): Show a progress bar. Defaults to True.
        **kwargs: Arguments of :class:`CLIP`.
    """

    #: ``pred_score`` from the logits, see :func:`logits_to_samples`.
    score_activation = 'softmax'
    #: Checkpoint keys dropped on load (``load_checkpoint``).
    runtime_keys: Tuple[str, ...] = ('text_prototypes',
                                     r'example_(feats|labels)')

    def __init__(self,
                 categories: Optional[Union[str, Sequence[str]]] = None,
                 templates: Union[str, Sequence[str]] = 'simple',
                 descriptions: Optional[Union[str, dict]] = None,
                 description_weight: float = 0.5,
                 cache_alpha: float = 1.0,
                 cache_beta: float = 5.5,
                 text_batch_size: int = 1024,
                 progress: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= description_weight <= 1:
            raise ValueError('description_weight must be in [0, 1], got '
                             f'{description_weight}')
        self.description_weight = float(description_weight)
        self.cache_alpha = float(cache_alpha)
        self.cache_beta = float(cache_beta)
        self.text_batch_size = text_batch_size
        self.progress = progress
        # Prototypes need the final weights: the first predict builds them.
        self.templates: Tuple[str, ...] = resolve_templates(templates)
        self.categories: Optional[List[str]] = None
        self.descriptions: Dict[int, Tuple[str, ...]] = {}
        self.vocabulary: Optional[ClassVocabulary] = None
        # What new weights dropped that cannot be rebuilt, if anything.
        self._lost: Optional[str] = None
        if categories is not None:
            self.categories = list(resolve_categories(categories))
            self.descriptions = resolve_descriptions(descriptions,
                                                     self.categories)
        elif descriptions is not None:
            raise ValueError('descriptions need categories')

    @property
    def image_size(self) -> int:
        """int: Side of the square images the image tower takes."""
        return int(self.visual.img_size[0])

    @property
    def num_classes(self) -> int:
        """int: Number of categories (0 before any are set)."""
        if self.vocabulary is not None:
            return len(self.vocabulary)
        return len(self.categories or ())

    @property
    def text_prototypes(self) -> Optional[torch.Tensor]:
        """torch.Tensor: The default vocabulary's prototypes, if built."""
        return getattr(self.vocabulary, 'prototypes', None)

    @property
    def example_feats(self) -> Optional[torch.Tensor]:
        """torch.Tensor: The default vocabulary's example features."""
        return getattr(self.vocabulary, 'example_feats', None)

    @property
    def example_labels(self) -> Optional[torch.Tensor]:
        """torch.Tensor: The default vocabulary's example labels."""
        return getattr(self.vocabulary, 'example_labels', None)

    def build_vocabulary(
            self,
            categories: Union[str, Sequence[str]],
            templates: Optional[Union[str, Sequence[str]]] = None,
            descriptions: Optional[Union[str, dict]] = None,
            prototypes: Optional[torch.Tensor] = None) -> ClassVocabulary:
        """The vocabulary of ``categories`` with the current weights; the
        model is not changed.

        Args:
            categories (str | Sequence[str]): See the class docstring.
            templates (str | Sequence[str], optional): Defaults to the
                model's templates.
            descriptions (str | dict, optional): Defaults to None (none).
            prototypes (torch.Tensor, optional): ``(C, proj_dims)``, from
                :meth:`build_prototypes` for exactly these inputs and weights
                (e.g. a ``PrototypeCache``). Defaults to None (built now).

        Returns:
            ClassVocabulary: Without examples.
        """
        categories = list(resolve_categories(categories))
        templates = resolve_templates(self.templates if templates is
                                      None else templates)
        descriptions = resolve_descriptions(descriptions, categories)
        if prototypes is None:
            prototypes = self.build_prototypes(categories, templates,
                                               descriptions)
        # Normalise built and given prototypes alike: renormalising can move
        # the last bit, and a cached copy must predict as the built one.
        prototypes = self._check_prototypes(prototypes, len(categories))
        return ClassVocabulary(
            prototypes,
            tuple(categories),
            templates=tuple(templates),
            descriptions=tuple((i, tuple(texts))
                               for i, texts in sorted(descriptions.items())))

    def set_categories(self,
                       categories: Union[str, Sequence[str]],
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       descriptions: Optional[Union[str, dict]] = None,
                       prototypes: Optional[torch.Tensor] = None) -> None:
        """Set the default vocabulary (:meth:`build_vocabulary` takes the
        same arguments); removes the examples. Unlike :meth:`set_prototypes`,
        given prototypes are rebuilt after new weights load."""
        vocabulary = self.build_vocabulary(categories, templates,
                                           descriptions, prototypes)
        self.categories = list(vocabulary.names)
        self.templates = vocabulary.templates
        self.descriptions = dict(vocabulary.descriptions)
        self.vocabulary, self._lost = vocabulary, None

    def set_examples(self,
                     images: Optional[Union[torch.Tensor,
                                            Sequence[torch.Tensor]]],
                     labels: Optional[Sequence[int]] = None,
                     batch_size: int = 32) -> None:
        """Encode example images into Tip-Adapter's cache, or remove it.

        Args:
            images (torch.Tensor | Sequence[torch.Tensor], optional): ``(M,
                3, H, W)`` or ``M`` tensors ``(3, H, W)``, uint8 BGR pixels
                (:func:`mmprompt.datasets.load_example_images`). None or
                none removes all examples.
            labels (Sequence[int], optional): Their labels.
                Defaults to None.
            batch_size (int): Images per forward pass. Defaults to 32.
        """
        if self._lost == 'example features':
            self._lost = None  # the categories' prototypes can be rebuilt
        if images is None or len(images) == 0:
            if self.vocabulary is not None:
                self.vocabulary = self.vocabulary.with_examples(None, None)
            return
        if self.num_classes == 0:
            raise RuntimeError('set categories before examples')
        self.vocabulary = self.get_vocabulary().with_examples(
            *self.encode_examples(images, labels, batch_size))

    def encode_examples(
        self,
        images: Union[torch.Tensor, Sequence[torch.Tensor]],
        labels: Sequence[int],
        batch_size: int = 32,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of example images for
        :meth:`ClassVocabulary.with_examples`; the model is not changed.

        Args:
            images (torch.Tensor | Sequence[torch.Tensor]): See
                :meth:`set_examples`.
            labels (Sequence[int]): Their labels.
            batch_size (int): Images per forward pass. Defaults to 32.

        Returns:
            tuple: ``(M, proj_dims)`` float32 unit rows, ``(M, )`` labels.
        """
        labels = torch.as_tensor(
            [] if labels is None else labels, dtype=torch.long).reshape(-1)
        if labels.numel() != len(images):
            raise ValueError(f'{len(images)} example images for '
                             f'{labels.numel()} labels')
        feats = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = list(images[start:start + batch_size])
                data = self.data_preprocessor(dict(inputs=batch), False)
                feats.append(F.normalize(
                    self.extract_image_feat(data['inputs']).float(), dim=-1))
        feats = torch.cat(feats).clone()
        return feats, labels.to(feats.device)

    def set_prototypes(self,
                       prototypes: torch.Tensor,
                       categories: Optional[Sequence[str]] = None) -> None:
        """Store ready-made prototypes; removes descriptions and examples.

        Args:
            prototypes (torch.Tensor): ``(C, proj_dims)``, normalised here.
            categories (Sequence[str], optional): Their ``C`` names.
                Defaults to None.
        """
        if categories is not None:
            categories = list(check_categories(categories))
        self.vocabulary = ClassVocabulary(
            self._check_prototypes(
                prototypes, None if categories is None else len(categories)),
            None if categories is None else tuple(categories),
            from_names=False)
        self.categories = categories
        self.descriptions = {}
        self._lost = None

    def _check_prototypes(self, prototypes: torch.Tensor,
                          num: Optional[int]) -> torch.Tensor:
        """``(num, proj_dims)`` prototypes, normalised, on our device."""
        if prototypes.dim() != 2 or prototypes.size(1) != self.proj_dims:
            raise ValueError(f'prototypes must be (C, {self.proj_dims}), got '
                             f'{tuple(prototypes.shape)}')
        if num is not None and num != prototypes.size(0):
            raise ValueError(f'{num} categories for '
                             f'{prototypes.size(0)} prototypes')
        return F.normalize(prototypes.detach().to(self.logit_scale), dim=-1)

    def get_vocabulary(self) -> ClassVocabulary:
        """The default vocabulary, built first if needed (see the class
        docstring); ``RuntimeError`` if it cannot be."""
        if self.vocabulary is None:
            if self._lost == 'example features':
                raise RuntimeError(
                    'the example features were encoded with other weights: '
                    'call set_examples(...) again')
            if self._lost is not None:
                raise RuntimeError(
                    f'the {self._lost} were made with other weights: call '
                    'set_categories(...) or set_prototypes(...) again')
            if self.categories is None:
                raise RuntimeError(
                    'no text prototypes: call set_categories(...) or '
                    'set_prototypes(...), or pass a vocabulary')
            self.vocabulary = self.build_vocabulary(
                self.categories, self.templates, self.description_spec())
        return self.vocabulary

    def description_spec(self) -> Optional[Dict[str, List[str]]]:
        """dict, optional: The descriptions as :meth:`build_vocabulary` takes
        them, ``{name: [texts]}``; None without any."""
        if not self.descriptions:
            return None
        return {
            self.categories[label]: list(texts)
            for label, texts in self.descriptions.items()
        }

    def get_prototypes(self) -> torch.Tensor:
        """``(C, proj_dims)`` unit rows of :meth:`get_vocabulary`."""
        return self.get_vocabulary().prototypes

    def build_prototypes(
        self,
        categories: Sequence[str],
        templates: Sequence[str],
        descriptions: Optional[Dict[int,
                                    Sequence[str]]] = None) -> torch.Tensor:
        """Text prototypes of categories; nothing is stored.

        Args:
            categories (Sequence[str]): Category names, ``C`` of them.
            templates (Sequence[str]): Format strings with one ``{}``.
            descriptions (dict, optional): Label -> texts. Defaults to None.

        Returns:
            torch.Tensor: ``(C, proj_dims)`` unit rows on the model's device.
        """
        descriptions = descriptions or {}
        num_desc = sum(len(d) for d in descriptions.values())
        print_log(f'Building text prototypes: {len(categories)} categories x '
                  f'{len(templates)} templates, {num_desc} descriptions',
                  logger='current')
        return build_text_prototypes_sharded(
            self.text_encoder, self.tokenize, categories, templates,
            descriptions, self.description_weight,
            batch_size=self.text_batch_size, device=self.logit_scale.device,
            progress=self.progress)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # New weights make the default vocabulary stale.
        vocabulary, self.vocabulary = self.vocabulary, None
        if vocabulary is None:
            return
        if not vocabulary.from_names:
            self._lost = 'hand-set prototypes'
        elif vocabulary.example_feats is not None:
            self._lost = 'example features'

    def _apply(self, fn, *args, **kwargs):
        # The default vocabulary moves and casts with the model, as buffers.
        super()._apply(fn, *args, **kwargs)
        vocabulary = self.vocabulary
        if vocabulary is not None:
            self.vocabulary = dataclasses.replace(
                vocabulary, **{
                    k: fn(getattr(vocabulary, k))
                    for k in ('prototypes', 'example_feats', 'example_labels')
                    if getattr(vocabulary, k) is not None
                })
        return self

    def compute_class_logits(
            self,
            image_feats: torch.Tensor,
            vocabulary: Optional[ClassVocabulary] = None) -> torch.Tensor:
        """``(N, C)`` logits of ``image_feats``, unit rows
        ``(N, proj_dims)``, over ``vocabulary`` (default:
        :meth:`get_vocabulary`)."""
        vocabulary = vocabulary or self.get_vocabulary()
        return vocabulary.logits(image_feats, self.scale_similarity,
                                 self.cache_alpha, self.cache_beta)

    def predict(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[DataSample]] = None,
        vocabulary: Optional[ClassVocabulary] = None
    ) -> List[DataSample]:
        """Classify images among the categories.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(N, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill.
                Defaults to None (new ones).
            vocabulary (ClassVocabulary, optional): What to classify into.
                Defaults to the model's (:meth:`get_vocabulary`).

        Returns:
            List[DataSample]: With ``pred_score`` and ``pred_label``.
        """
        image_feats = F.normalize(self.extract_image_feat(inputs), dim=-1)
        return logits_to_samples(
            self.compute_class_logits(image_feats, vocabulary), data_samples,
            self.score_activation)
