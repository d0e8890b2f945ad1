# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP on MMPreTrain: a feature extractor and a zero-shot classifier.

The model is `CLIP <https://arxiv.org/abs/2103.00020>`_ as released by OpenAI
(``clip/model.py``, MIT licence). The image tower is MMPreTrain's
``VisionTransformer`` configured to compute OpenAI's ViT exactly; the text
tower is :class:`~mmprompt.models.clip.text_encoder.CLIPTextTransformer`.
Prompt ensembling over templates follows OpenAI's ImageNet notebook and
open_clip's ``build_zero_shot_classifier`` (MIT licence), batched over all
classes at once; example images use Tip-Adapter's training-free cache
(https://arxiv.org/abs/2207.09519). The prototype builders live in
:mod:`mmprompt.models.clip.zero_shot`. The models decode no images: example
images come in as tensors (:mod:`mmprompt.datasets.examples` reads them),
and the on-disk prototype cache is
:class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`, used by the
callers. The code is written for mmprompt.
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

#: The image towers' ``out_type`` values that give one pooled ``(N, C)``
#: feature: the class token (OpenAI's ViT) or attention pooling (PE-Core).
POOLED_OUT_TYPES = ('cls_token', 'attn_pool')


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


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
    """Fill ``pred_score`` and ``pred_label`` (the largest logit) of each
    sample, making new samples if None: the single-label result of every
    classifier here (zero-shot CLIP and SigLIP, CoOp, CoCoOp,
    Tip-Adapter-F). ``pred_score`` is the softmax of the class logits, or
    their sigmoid (SigLIP's own per-category probabilities); both keep the
    order of the logits, so top-k metrics are the same either way.
    Non-finite logits are refused (:func:`~mmprompt.utils.scores.
    check_finite_scores`)."""
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

    A concrete feature extractor: it embeds images and token ids into one
    space and scores them against each other. Predicting labels is left to
    subclasses such as :class:`CLIPZeroShot`. Inference only.

    Args:
        vision_backbone (dict): Config of the image tower, built with
            ``MODELS``; it must return a tuple whose last item is the pooled
            feature ``(N, C)`` and expose ``embed_dims``; it pools to the
            class token or an attention head (``out_type`` in
            :data:`POOLED_OUT_TYPES`), or declares ``pooled_by`` (e.g.
            :class:`~mmprompt.models.siglip.MAPVisionTransformer`). OpenAI's
            ViT is MMPreTrain's ``VisionTransformer`` with ``pre_norm=True``,
            ``norm_cfg=dict(type='LN', eps=1e-5)``, ``out_type='cls_token'``
            and ``act_cfg=dict(type='mmpretrain.QuickGELU')`` in its
            ``layer_cfgs``; PE-Core's is
            :class:`~mmprompt.models.pe_core.PEVisionTransformer`.
        text_backbone (dict): Config of the text tower, e.g.
            ``dict(type='CLIPTextTransformer', ...)``. Its ``out_dims``
            defaults to ``proj_dims`` and must equal it.
        tokenizer (dict, optional): Config of the tokenizer, built with
            ``TOKENIZER``. Defaults to ``dict(type='CLIPTokenizer')``.
        proj_dims (int): Width of the joint embedding space. Defaults to 512.
        visual_proj_bias (bool): Whether ``visual_proj`` has a bias (PE-Core's
            has, OpenAI's has not). Defaults to False.
        data_preprocessor (dict | nn.Module, optional): The data
            preprocessor, by default MMPreTrain's ``ClsDataPreprocessor``
            with OpenAI's mean and std and ``to_rgb=True`` (images loaded as
            BGR). A dict without ``type`` gets that type. Defaults to None.
        image_preprocess (dict, optional): How images are resized before
            the data preprocessor, the ``resize_mode`` and
            ``interpolation`` of
            :class:`~mmprompt.datasets.CLIPPreprocess` (open_clip's
            ``pretrained_cfg``), e.g. ``dict(resize_mode='squash')`` for
            Apple's DFN models. Defaults to None (OpenAI's: the short side
            bicubic, centre crop).
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    #: ``image_preprocess`` when the config gives none (OpenAI's).
    default_image_preprocess: Dict[str, str] = dict(
        resize_mode='shortest', interpolation='bicubic')
    #: Mean and std of RGB in [0, 255] of the default data preprocessor.
    image_mean: Tuple[float, ...] = CLIP_MEAN
    image_std: Tuple[float, ...] = CLIP_STD
    #: The tokenizer built when the config names none (None: none built).
    default_tokenizer: Optional[dict] = dict(type='CLIPTokenizer')
    #: Whether a linear map (``visual_proj``) takes the image tower's
    #: pooled feature to the joint space; if not, it is already there.
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
        # Towers that pool themselves (an attention head) say how.
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
        if self.logit_bias_init is not None:
            self.logit_bias = nn.Parameter(torch.tensor(self.logit_bias_init))
        else:
            self.logit_bias = None

    #: Submodules :func:`~mmprompt.models.utils.compile_model` compiles: the
    #: image tower (text prototypes are built once per category set, from
    #: prompts of varying length).
    compile_modules = ('visual', )
    #: What :func:`~mmprompt.models.utils.compile_model` adds with
    #: ``text=True``: none here, as prompt batches vary in length.
    text_compile_modules: Tuple[str, ...] = ()

    #: Submodules :func:`~mmprompt.models.utils.apply_precision` casts: the
    #: image tower and the text tower's residual blocks. ``visual_proj``,
    #: the text tower's embeddings, ``ln_final`` and ``text_projection``,
    #: ``logit_scale`` and the prototypes stay fp32.
    low_precision_modules = ('visual', 'text_encoder.resblocks')

    @property
    def preprocess_args(self) -> dict:
        """dict: The arguments of the
        :class:`~mmprompt.datasets.CLIPPreprocess` that makes this model's
        input: ``scale`` (the image tower's side), ``resize_mode`` and
        ``interpolation``."""
        return dict(
            scale=int(self.visual.img_size[0]), **self.image_preprocess)

    @property
    def pad_id(self) -> int:
        """int: The id that pads rows of token ids (0 for CLIP, the
        tokenizer's ``pad_id`` if it has one)."""
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
            data_samples (List[DataSample], optional): Annotations to fill
                with predictions. Defaults to None.
            mode (str): ``'predict'`` returns data samples from
                :meth:`predict`, ``'tensor'`` returns image features
                ``(N, proj_dims)``. Defaults to ``'predict'``.

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
        """Embed images, like OpenAI's ``encode_image``.

        Args:
            images (torch.Tensor): Preprocessed images, ``(N, 3, H, W)``.

        Returns:
            torch.Tensor: ``(N, proj_dims)``, not normalised.
        """
        return self.visual_proj(self.visual(images)[-1])

    def extract_text_feat(self, texts: torch.Tensor) -> torch.Tensor:
        """Embed token ids, like OpenAI's ``encode_text``.

        Args:
            texts (torch.Tensor): Token ids from :meth:`tokenize`,
                ``(N, L)``, ``L <= context_length``.

        Returns:
            torch.Tensor: ``(N, proj_dims)``, not normalised.
        """
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
            torch.Tensor | tuple: The image features, the text features, or
            both as ``(image_feats, text_feats)`` when both are given.
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
        """Cosine similarity of every image with every text.

        Args:
            images (torch.Tensor): ``(N, 3, H, W)``.
            texts (torch.Tensor): Token ids, ``(M, L)``.

        Returns:
            torch.Tensor: ``(N, M)``, in ``[-1, 1]``.
        """
        image_feats, text_feats = self.extract_feat(images, texts)
        return _cosine(image_feats, text_feats)

    def scale_similarity(self, similarity: torch.Tensor) -> torch.Tensor:
        """Logits of cosine similarities: ``logit_scale.exp() * similarity
        (+ logit_bias)``.

        Args:
            similarity (torch.Tensor): Cosines, any shape.

        Returns:
            torch.Tensor: The logits, same shape.
        """
        logits = self.logit_scale.exp() * similarity
        if self.logit_bias is not None:
            logits = logits + self.logit_bias
        return logits

    def compute_logits(self, images: torch.Tensor,
                       texts: torch.Tensor) -> torch.Tensor:
        """Image-to-text logits: ``logit_scale.exp()`` times the cosine,
        plus ``logit_bias`` if the model has one (SigLIP).

        Args:
            images (torch.Tensor): ``(N, 3, H, W)``.
            texts (torch.Tensor): Token ids, ``(M, L)``.

        Returns:
            torch.Tensor: ``(N, M)``.
        """
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
        """Predict from images; implemented by subclasses.

        Raises:
            NotImplementedError: Always: :class:`CLIP` extracts features
                only.
        """
        raise NotImplementedError(
            f'{type(self).__name__} only extracts features; use a subclass '
            'that predicts, such as CLIPZeroShot')


@MODELS.register_module()
class CLIPZeroShot(CLIP):
    """Zero-shot image classification with CLIP: names, descriptions and
    example images in, labels out; the weights stay frozen.

    Each category gets a text prototype, the normalised mean embedding of
    its prompts: the templates filled with its name (OpenAI's prompt
    ensembling) and, optionally, free-text descriptions, mixed by
    ``description_weight``. Optional example images per category form
    Tip-Adapter's training-free cache (`Zhang et al., 2022
    <https://arxiv.org/abs/2207.09519>`_). An image with normalised feature
    ``f`` gets

    ``logits = logit_scale.exp() * f @ P.T
    + cache_alpha * exp(-cache_beta * (1 - f @ K.T)) @ L``

    with ``P`` the prototypes, ``K`` the example features and ``L`` their
    one-hot labels (plus ``logit_bias`` for SigLIP), and ``pred_score`` is
    ``softmax(logits)`` (``score_activation``; SigLIP's own sigmoid
    for :class:`~mmprompt.models.siglip.SigLIPZeroShot`). See
    :mod:`mmprompt.models.clip.zero_shot` for the exact rules.

    What the model recognises is a value, a
    :class:`~mmprompt.models.clip.vocabulary.ClassVocabulary` built by
    :meth:`build_vocabulary` (and
    :meth:`~mmprompt.models.clip.vocabulary.ClassVocabulary.with_examples`
    with :meth:`encode_examples`) and passed to
    ``predict(inputs, vocabulary=...)``; the model is not changed by it, so
    callers with different category sets can share one model (the
    inferencers do). For MMEngine's Runner (``tools/test.py``, configs) the
    model keeps one default vocabulary, that of its configured categories,
    built on first use or set by :meth:`set_categories`,
    :meth:`set_examples` or :meth:`set_prototypes`. Loading weights
    (``load_state_dict``, ``load_checkpoint``) drops it, since it depends
    on the towers: one built from categories is rebuilt by the next
    :meth:`predict`; hand-set prototypes and examples must be set again
    (predicting first is an error). After changing weights in any other
    way, call :meth:`set_categories` again.

    The model decodes no images and keeps no cache (category and
    description files are read by :mod:`~mmprompt.models.clip.prompts`):
    example images come as tensors
    (:func:`mmprompt.datasets.load_example_images` reads them), and ready
    prototypes (e.g. from a
    :class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`) go to
    :meth:`set_categories`. Under ``tools/test.py`` a config's
    ``model.examples`` and ``model.prototype_cache_dir`` are handed to
    :class:`~mmprompt.engine.PrepareZeroShotHook`, which does both once the
    weights are loaded.

    Args:
        categories (str | Sequence[str], optional): ``'cifar100'``,
            ``'imagenet'``, a text file (one name per line) or a list of
            names; label ``i`` is name ``i``. Without them, call
            :meth:`set_categories` or :meth:`set_prototypes` before
            predicting. Defaults to None.
        templates (str | Sequence[str]): Anything
            :func:`~mmprompt.models.clip.prompts.resolve_templates` takes
            (a set name, one template, a file or a list). Defaults to
            ``'simple'`` (``'a photo of a {}.'``).
        descriptions (str | dict, optional): ``{name: text or texts}`` or a
            JSON file of it. Descriptions over the 77-token context are
            truncated with a warning. Defaults to None.
        description_weight (float): Weight of a category's description
            ensemble against its template ensemble, in ``[0, 1]``; ``1``
            uses the descriptions instead of the templates. Defaults to 0.5.
        cache_alpha (float): Tip-Adapter's weight of the example cache.
            Defaults to 1.0.
        cache_beta (float): Tip-Adapter's sharpness of the example
            affinities. Defaults to 5.5.
        text_batch_size (int): Prompts per forward pass when building
            prototypes. Defaults to 1024.
        progress (bool): Show a progress bar while building prototypes.
            Defaults to True.
        **kwargs: Arguments of :class:`CLIP`.
    """

    #: ``pred_score`` from the logits, see :func:`logits_to_samples`.
    score_activation = 'softmax'
    #: Keys of older checkpoints rebuilt at run time (now properties of the
    #: vocabulary): dropped on load, see
    #: :func:`mmprompt.utils.checkpoint.load_checkpoint`.
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
        # Inputs are checked now; prototypes need the final weights, so the
        # first predict builds the default vocabulary, after any checkpoint
        # is loaded.
        self.templates: Tuple[str, ...] = resolve_templates(templates)
        self.categories: Optional[List[str]] = None
        self.descriptions: Dict[int, Tuple[str, ...]] = {}
        self.vocabulary: Optional[ClassVocabulary] = None
        # Why the default vocabulary cannot be rebuilt after new weights
        # (hand-set prototypes or examples), if so.
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
        return None if self.vocabulary is None else self.vocabulary.prototypes

    @property
    def example_feats(self) -> Optional[torch.Tensor]:
        """torch.Tensor: The default vocabulary's example features."""
        return None if self.vocabulary is None \
            else self.vocabulary.example_feats

    @property
    def example_labels(self) -> Optional[torch.Tensor]:
        """torch.Tensor: The default vocabulary's example labels."""
        return None if self.vocabulary is None \
            else self.vocabulary.example_labels

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
            prototypes (torch.Tensor, optional): The ``(C, proj_dims)``
                prototypes of exactly these categories, templates and
                descriptions, built by :meth:`build_prototypes` with the
                current weights (e.g. read from a
                :class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`
                ). Defaults to None (built now).

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
        # Built and given prototypes alike: normalising unit rows again can
        # move the last bit, and a cached copy must predict what the built
        # one predicts.
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
        """Set the categories and their prototypes; removes the examples.

        Args:
            categories (str | Sequence[str]): See the class docstring.
            templates (str | Sequence[str], optional): Defaults to the
                current templates.
            descriptions (str | dict, optional): Defaults to None (none).
            prototypes (torch.Tensor, optional): The ``(C, proj_dims)``
                prototypes of exactly these categories, templates and
                descriptions, built by :meth:`build_prototypes` with the
                current weights (e.g. read from a
                :class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`
                ); unlike :meth:`set_prototypes`, they are rebuilt after
                new weights load. Defaults to None (built now).
        """
        vocabulary = self.build_vocabulary(categories, templates,
                                           descriptions, prototypes)
        self.categories = list(vocabulary.names)
        self.templates = resolve_templates(self.templates if templates is
                                           None else templates)
        self.descriptions = resolve_descriptions(descriptions,
                                                 self.categories)
        self.vocabulary, self._lost = vocabulary, None

    def set_examples(self,
                     images: Optional[Union[torch.Tensor,
                                            Sequence[torch.Tensor]]],
                     labels: Optional[Sequence[int]] = None,
                     batch_size: int = 32) -> None:
        """Encode example images into Tip-Adapter's cache, or remove it.

        The images are encoded now, with the current weights; new weights
        clear them (see the class docstring).

        Args:
            images (torch.Tensor | Sequence[torch.Tensor], optional): ``(M,
                3, H, W)`` or ``M`` tensors ``(3, H, W)``, uint8 pixels as
                the data preprocessor takes them (BGR, as
                :func:`mmprompt.datasets.load_example_images` gives them).
                None or none removes all examples.
            labels (Sequence[int], optional): The ``M`` labels, in ``[0,
                num_classes)``. Defaults to None.
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
        :meth:`ClassVocabulary.with_examples
        <mmprompt.models.clip.vocabulary.ClassVocabulary.with_examples>`;
        the model is not changed.

        Args:
            images (torch.Tensor | Sequence[torch.Tensor]): See
                :meth:`set_examples`.
            labels (Sequence[int]): Their labels.
            batch_size (int): Images per forward pass. Defaults to 32.

        Returns:
            tuple: ``(M, proj_dims)`` unit rows (float32) and ``(M, )``
            labels, on the model's device.
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
                feats.append(
                    F.normalize(
                        self.extract_image_feat(data['inputs']).float(),
                        dim=-1))
        feats = torch.cat(feats).clone()
        return feats, labels.to(feats.device)

    def set_prototypes(self,
                       prototypes: torch.Tensor,
                       categories: Optional[Sequence[str]] = None) -> None:
        """Store ready-made prototypes; removes descriptions and examples.

        Args:
            prototypes (torch.Tensor): ``(C, proj_dims)``; rows are
                normalised here.
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
        """The default vocabulary, built first from the configured
        categories if it is not there (see the class docstring).

        Raises:
            RuntimeError: No categories, or hand-set prototypes or examples
                dropped by a weights load.
        """
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
        """The current descriptions as :meth:`build_vocabulary` takes them
        (``self.descriptions`` is keyed by label).

        Returns:
            dict, optional: ``{name: [texts]}``; None without any.
        """
        if not self.descriptions:
            return None
        return {
            self.categories[label]: list(texts)
            for label, texts in self.descriptions.items()
        }

    def get_prototypes(self) -> torch.Tensor:
        """The default vocabulary's prototypes (see :meth:`get_vocabulary`).

        Returns:
            torch.Tensor: ``(C, proj_dims)``, unit rows.
        """
        return self.get_vocabulary().prototypes

    def build_prototypes(
        self,
        categories: Sequence[str],
        templates: Sequence[str],
        descriptions: Optional[Dict[int,
                                    Sequence[str]]] = None) -> torch.Tensor:
        """Text prototypes of categories; nothing is stored.

        All prompts of all categories are encoded together, sorted by
        length, in batches of ``text_batch_size``, each cut to its longest
        prompt (exact: attention is causal and pooling reads the
        end-of-text token), and the tokens that prompts start with alike (a
        template's words before ``{}``) run once per batch; see
        :func:`mmprompt.models.clip.zero_shot.encode_token_ids`.

        Args:
            categories (Sequence[str]): Category names, ``C`` of them.
            templates (Sequence[str]): Format strings with one ``{}``.
            descriptions (dict, optional): Label -> descriptions, see
                :func:`~mmprompt.models.clip.prompts.resolve_descriptions`.
                Defaults to None.

        Returns:
            torch.Tensor: ``(C, proj_dims)`` on the model's device, unit
            rows.
        """
        descriptions = descriptions or {}
        num_desc = sum(len(d) for d in descriptions.values())
        print_log(
            f'Building text prototypes: {len(categories)} categories x '
            f'{len(templates)} templates, {num_desc} descriptions',
            logger='current')
        return build_text_prototypes_sharded(
            self.text_encoder,
            self.tokenize,
            categories,
            templates,
            descriptions,
            self.description_weight,
            batch_size=self.text_batch_size,
            device=self.logit_scale.device,
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
        """Logits of normalised image features over the categories.

        Args:
            image_feats (torch.Tensor): ``(N, proj_dims)``, unit rows.
            vocabulary (ClassVocabulary, optional): Defaults to the model's
                (:meth:`get_vocabulary`).

        Returns:
            torch.Tensor: ``(N, C)``.
        """
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
            data_samples (List[DataSample], optional): Samples to fill;
                new ones are made if None. Defaults to None.
            vocabulary (ClassVocabulary, optional): What to classify into.
                Defaults to the model's (:meth:`get_vocabulary`).

        Returns:
            List[DataSample]: With ``pred_score`` ``(C,)`` (softmax or
            sigmoid of the logits, see ``score_activation``) and
            ``pred_label`` ``(1,)``.
        """
        image_feats = F.normalize(self.extract_image_feat(inputs), dim=-1)
        return logits_to_samples(
            self.compute_class_logits(image_feats, vocabulary), data_samples,
            self.score_activation)
