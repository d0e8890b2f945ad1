# Copyright (c) mmprompt contributors. All rights reserved.
"""`RAM <https://arxiv.org/abs/2306.03514>`_ image tagging (tagging only) on
MMPreTrain's Swin; design of ``xinyu1205/recognize-anything`` (Apache-2.0).
"""
import copy
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmprompt.models.utils.data_preprocessor import build_cls_preprocessor
from mmprompt.models.utils.fast_attention import enable_sdpa
from mmprompt.models.utils.tensor_cache import TensorCache
from mmprompt.registry import MODELS
from mmprompt.utils.scores import check_finite_scores
from .label_embedding import CategorySpec, TemplateSpec, TextEncoder
from .preprocess import RAM_MEAN, RAM_STD
from .vocabulary import (TagNames, TagVocabulary, check_deleted,
                         check_names)


def _encoder_channels(encoder: nn.Module) -> int:
    """Channels of the last feature map an MMPreTrain Swin returns."""
    try:
        return int(encoder.num_features[encoder.out_indices[-1]])
    except (AttributeError, IndexError, TypeError):
        raise TypeError(
            'visual_encoder must be a SwinTransformer-like backbone exposing '
            f'num_features and out_indices, got {type(encoder).__name__}'
        ) from None


@MODELS.register_module()
@MODELS.register_module('RAMNormal')
class RAM(BaseModel):
    """RAM's tagging network: image -> one logit per tag of
    :attr:`vocabulary` (RAM's own tags, or that of :meth:`set_vocabulary`).
    ``RAMNormal`` is MMPreTrain's name of this class.

    Args:
        visual_encoder (dict): Config of MMPreTrain's ``SwinTransformer``.
        tagging_head (dict, optional): Config of the tagging head. Defaults
            to ``dict(type='RAMTaggingHead')``.
        num_classes (int): Tags of RAM's own vocabulary. Defaults to 4585.
        embed_dims (int): Width of the label embeddings. Defaults to 512.
        threshold (float): Initial threshold of every tag. Defaults to 0.68.
        delete_tag_index (Sequence[int]): Own tags never selected.
            Defaults to ().
        category_encoder (dict, optional): Config of a
            :class:`~.vocabulary.CategoryEncoder`. Defaults to None.
        fast_attention (bool): Swin attention through
            :func:`~mmprompt.models.utils.enable_sdpa`. Defaults to True.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            :class:`~mmprompt.models.ram.RAMDataPreprocessor`.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """
    #: Whether open-set categories may carry several descriptions each.
    takes_descriptions = False
    #: See :func:`mmprompt.utils.checkpoint.load_checkpoint`.
    runtime_keys: Tuple[str, ...] = (
        r'openset_(label_embed|class_threshold)', )
    loaded_elsewhere: Tuple[str, ...] = (
        r'category_encoder\.text_encoder\..+', )

    def __init__(self,
                 visual_encoder: dict,
                 tagging_head: Optional[dict] = None,
                 num_classes: int = 4585,
                 embed_dims: int = 512,
                 threshold: float = 0.68,
                 delete_tag_index: Sequence[int] = (),
                 category_encoder: Optional[dict] = None,
                 fast_attention: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='RAMDataPreprocessor')
        data_preprocessor = build_cls_preprocessor(data_preprocessor, RAM_MEAN,
                                                   RAM_STD)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.delete_tag_index = check_deleted(delete_tag_index, num_classes)

        self.visual_encoder = MODELS.build(copy.deepcopy(visual_encoder))
        if fast_attention:
            enable_sdpa(self.visual_encoder)
        self.image_proj = nn.Linear(
            _encoder_channels(self.visual_encoder), embed_dims)
        self.tagging_head = MODELS.build(
            copy.deepcopy(tagging_head or dict(type='RAMTaggingHead')))
        if self.tagging_head.memory_dims != embed_dims:
            raise ValueError(
                f'tagging_head memory_dims ({self.tagging_head.memory_dims}) '
                f'must equal embed_dims ({embed_dims})')
        head_dims = self.tagging_head.embed_dims
        self.label_embed = nn.Parameter(torch.zeros(num_classes, embed_dims))
        self.wordvec_proj = nn.Linear(embed_dims, head_dims)
        self.fc = nn.Linear(head_dims, 1)
        self.register_buffer('class_threshold',
                             torch.full((num_classes, ), float(threshold)))
        self.category_encoder = None
        if category_encoder is not None:
            self.category_encoder = MODELS.build(
                dict(type='CategoryEncoder', **category_encoder))
        self._names: Tuple[Optional[TagNames],
                           Optional[TagNames]] = (None, None)
        self._openset = False
        self._openset_names: Optional[TagNames] = None
        # A checkpoint meta's ``openset_thresholds``.
        self.category_thresholds: Dict[str, float] = {}
        # The vocabulary of set_vocabulary: non-persistent, never saved.
        self.register_buffer('openset_label_embed',
                             torch.zeros(0, embed_dims), persistent=False)
        self.register_buffer('openset_class_threshold', torch.zeros(0),
                             persistent=False)
        self._label_queries = TensorCache()

    @property
    def compile_modules(self) -> List[str]:
        """list[str]: What :func:`~mmprompt.models.utils.compile_model`
        compiles."""
        layers = [f'tagging_head.layers.{i}'
                  for i in range(len(self.tagging_head.layers))]
        return ['visual_encoder'] + layers

    @property
    def low_precision_modules(self) -> List[str]:
        """list[str]: What :func:`~mmprompt.models.utils.apply_precision`
        casts; projections, embeddings and thresholds stay fp32."""
        names = ['visual_encoder', 'tagging_head']
        if self.text_encoder is not None:
            names.append('category_encoder.text_encoder.resblocks')
        return names

    @property
    def text_encoder(self) -> Optional[nn.Module]:
        """nn.Module | None: The category encoder's CLIP text tower."""
        encoder = self.category_encoder
        return None if encoder is None else encoder.text_encoder

    @property
    def closed_vocabulary(self) -> TagVocabulary:
        """TagVocabulary: RAM's own tags (a view of the parameters)."""
        return TagVocabulary(self.label_embed, self.class_threshold,
                             *self._names, self.delete_tag_index)

    @property
    def is_openset(self) -> bool:
        """bool: Whether a vocabulary of :meth:`set_vocabulary` is scored."""
        return self._openset

    @property
    def vocabulary(self) -> TagVocabulary:
        """TagVocabulary: That of :meth:`set_vocabulary`, else
        :attr:`closed_vocabulary`."""
        if not self.is_openset:
            return self.closed_vocabulary
        return TagVocabulary(self.openset_label_embed,
                             self.openset_class_threshold, self._openset_names)

    def set_tags(self,
                 tag_list: Sequence[str],
                 tag_list_chinese: Optional[Sequence[str]] = None,
                 thresholds: Optional[Sequence[float]] = None) -> None:
        """Name RAM's own tags and, optionally, set their thresholds.

        Args:
            tag_list (Sequence[str]): English names, one per class.
            tag_list_chinese (Sequence[str], optional): Chinese names.
                Defaults to None.
            thresholds (Sequence[float], optional): Per-class thresholds in
                [0, 1]. Defaults to None (kept).
        """
        names = (check_names(tag_list, self.num_classes, 'tag_list'),
                 check_names(tag_list_chinese, self.num_classes,
                             'tag_list_chinese'))
        if thresholds is not None:
            thr = torch.as_tensor(thresholds, dtype=torch.float32)
            if thr.shape != (self.num_classes, ):
                raise ValueError(f'thresholds must have shape '
                                 f'({self.num_classes},), got '
                                 f'{tuple(thr.shape)}')
            if not bool(((thr >= 0) & (thr <= 1)).all()):
                raise ValueError('thresholds must lie in [0, 1]')
            self.class_threshold.copy_(thr)
        self._names = names

    def set_tags_from_meta(self, meta: dict) -> None:
        """Name RAM's own tags from a converted checkpoint's meta.

        Args:
            meta (dict): ``checkpoint['meta']`` (``tag_list``, optionally
                ``tag_list_chinese`` and ``openset_thresholds``).
        """
        if not isinstance(meta, dict) or meta.get('tag_list') is None:
            raise ValueError(
                'the checkpoint meta has no tag_list; convert the original '
                'checkpoint with tools/model_converters/ram_to_mmprompt.py '
                '--tag-list ...')
        self.set_tags(meta['tag_list'], meta.get('tag_list_chinese'))
        calibrated = meta.get('openset_thresholds') or {}
        self.category_thresholds = {str(k): float(v)
                                    for k, v in calibrated.items()}

    def check_vocabulary(self, vocabulary: TagVocabulary) -> TagVocabulary:
        """``vocabulary`` checked, on the device and in the dtype of
        ``label_embed`` (thresholds float32).

        Args:
            vocabulary (TagVocabulary): E.g. of :meth:`openset_vocabulary`.
        """
        embed = vocabulary.label_embed
        if embed.size(1) != self.embed_dims:
            raise ValueError(f'label embeddings of {embed.size(1)} dims for '
                             f'a model of {self.embed_dims}')
        if vocabulary.num_descriptions > 1 and not self.takes_descriptions:
            raise ValueError(
                f'{vocabulary.num_descriptions} embeddings per tag need '
                f'RAM++; {type(self).__name__} takes one')
        device = self.label_embed.device
        embed = embed.detach().to(device=device, dtype=self.label_embed.dtype)
        thresholds = vocabulary.thresholds.detach().to(
            device=device, dtype=torch.float32)
        if embed is vocabulary.label_embed and \
                thresholds is vocabulary.thresholds:
            return vocabulary
        return TagVocabulary(embed, thresholds, vocabulary.names,
                             vocabulary.names_chinese, vocabulary.deleted)

    def set_vocabulary(self, vocabulary: TagVocabulary) -> None:
        """Make ``vocabulary`` the default of :meth:`predict` (the Runner's
        path; other callers pass theirs to :meth:`predict`).

        Args:
            vocabulary (TagVocabulary): E.g. of :meth:`openset_vocabulary`.
        """
        if vocabulary.deleted:
            raise ValueError('an open vocabulary deletes no tags; leave '
                             'its tags out instead')
        vocabulary = self.check_vocabulary(vocabulary)
        self.openset_label_embed = vocabulary.label_embed
        self.openset_class_threshold = vocabulary.thresholds
        self._openset, self._openset_names = True, vocabulary.names

    def openset_vocabulary(
            self,
            categories: Optional[CategorySpec] = None,
            templates: Optional[TemplateSpec] = None,
            threshold: Optional[float] = None,
            encode_text: Optional[TextEncoder] = None) -> TagVocabulary:
        """The vocabulary of these categories; the model is not changed.

        Args:
            categories (str | Sequence, optional): See
                :meth:`.CategoryEncoder.encode`.
            templates (str | Sequence[str], optional): Prompt templates.
            threshold (float, optional): Defaults to the calibrated
                ``category_thresholds``, else the configured one.
            encode_text (Callable, optional): Raw text features instead of
                the text tower. Defaults to None.
        """
        if self.category_encoder is None:
            raise TypeError(
                f'{type(self).__name__} has no category_encoder: use an '
                'open-set model (RAMOpenset or RAMPlusOpenset), e.g. '
                "'ram_swin-large-p4-w12_384px_openset'")
        vocabulary = self.check_vocabulary(self.category_encoder.encode(
            categories, templates, threshold, encode_text,
            descriptions=self.takes_descriptions))
        if threshold is None and self.category_thresholds:
            calibrated = [
                self.category_thresholds.get(name, float(thr)) for name, thr
                in zip(vocabulary.names, vocabulary.thresholds.tolist())
            ]
            vocabulary = TagVocabulary(
                vocabulary.label_embed,
                vocabulary.thresholds.new_tensor(calibrated),
                names=vocabulary.names)
        return vocabulary

    def set_openset(self,
                    categories: Optional[CategorySpec] = None,
                    templates: Optional[TemplateSpec] = None,
                    threshold: Optional[float] = None,
                    encode_text: Optional[TextEncoder] = None) -> None:
        """:meth:`set_vocabulary` of :meth:`openset_vocabulary` (same
        arguments)."""
        self.set_vocabulary(self.openset_vocabulary(
            categories, templates, threshold, encode_text))

    def clear_openset(self) -> None:
        """Go back to RAM's own tags."""
        self._openset, self._openset_names = False, None
        self.openset_label_embed = self.openset_label_embed.new_zeros(
            0, self.embed_dims)
        self.openset_class_threshold = \
            self.openset_class_threshold.new_zeros(0)

    def prepare_vocabulary(self,
                           meta: Optional[dict],
                           categories: Optional[CategorySpec] = None,
                           source: str = 'the checkpoint') -> None:
        """Once RAM's weights are loaded: name its tags from ``meta``, load
        the category encoder's text tower, embed the categories.

        Args:
            meta (dict, optional): The checkpoint's ``meta``; None if no
                checkpoint was loaded.
            categories (str | Sequence, optional): Categories to use instead
                of the configured ones. Defaults to None.
            source (str): For the warning. Defaults to ``'the checkpoint'``.
        """
        if isinstance(meta, dict) and meta.get('tag_list') is not None:
            self.set_tags_from_meta(meta)
        elif meta is not None:
            print_log(
                f'{source} holds no tag names (converted without '
                '--tag-list): predictions will give tag indices only',
                logger='current', level=logging.WARNING)
        encoder = self.category_encoder
        if encoder is None:
            return
        encoder.init_text_encoder()
        if categories is not None or encoder.categories is not None:
            self.set_openset(categories)

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """RAM's image tokens ``(B, 1 + h * w, C)``, their mean first.

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
        """
        feat = self.visual_encoder(images)[-1]
        tokens = feat.flatten(2).transpose(1, 2)
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

    def compute_label_queries(
            self, image_embeds: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """The tagging head's queries ``relu(wordvec_proj(label_embed))``,
        ``(K, H)``, shared by every image.

        Args:
            image_embeds (torch.Tensor): ``(B, N, C)`` (unused by RAM).
            vocabulary (TagVocabulary, optional): Defaults to
                :attr:`vocabulary` (its queries are cached).
        """
        proj = self.wordvec_proj
        if vocabulary is not None:
            return F.relu(proj(vocabulary.label_embed))
        embed = self.vocabulary.label_embed
        return self._label_queries.get((embed, proj.weight, proj.bias),
                                       lambda: F.relu(proj(embed)))

    def compute_logits(
            self, images: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """Logits ``(B, K)`` of every tag on every image.

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
            vocabulary (TagVocabulary, optional): Checked by
                :meth:`check_vocabulary`. Defaults to :attr:`vocabulary`.
        """
        image_embeds = self.image_proj(self.extract_image_feat(images))
        queries = self.compute_label_queries(image_embeds, vocabulary)
        return self.fc(self.tagging_head(queries, image_embeds)).squeeze(-1)

    def select_tags(
            self, scores: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """:meth:`TagVocabulary.select
        <mmprompt.models.ram.TagVocabulary.select>` of the vocabulary.

        Args:
            scores (torch.Tensor): Sigmoid scores, ``(B, K)``.
            vocabulary (TagVocabulary, optional): Defaults to
                :attr:`vocabulary`.
        """
        return (vocabulary or self.vocabulary).select(scores)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, list]:
        """MMEngine's entry point, inference only.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
            data_samples (List[DataSample], optional): Defaults to None.
            mode (str): ``'tensor'`` (logits) or ``'predict'`` (samples).
                Defaults to ``'tensor'``.
        """
        if mode == 'tensor':
            return self.compute_logits(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            raise NotImplementedError(
                f'{type(self).__name__} is inference only')
        raise ValueError(f"invalid mode {mode!r}; use 'tensor' or 'predict'")

    @torch.no_grad()
    def predict(self,
                images: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                vocabulary: Optional[TagVocabulary] = None
                ) -> List[DataSample]:
        """Tag images: ``pred_score`` (sigmoid, ``(K, )``), ``pred_label``
        (ascending) and, where named, ``pred_tags`` and ``pred_tags_chinese``
        (``NonFiniteScoresError`` on a non-finite logit).

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill.
                Defaults to None (new ones).
            vocabulary (TagVocabulary, optional): What is scored; the model
                is not changed. Defaults to :attr:`vocabulary`.
        """
        if vocabulary is not None:
            vocabulary = self.check_vocabulary(vocabulary)
        logits = self.compute_logits(images, vocabulary)
        vocabulary = vocabulary or self.vocabulary
        scores = check_finite_scores(logits).sigmoid()
        selected = vocabulary.select(scores)
        indices = selected.nonzero()[:, 1]
        per_image = indices.split(selected.sum(dim=1).tolist())
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.size(0))]
        for sample, score, labels in zip(data_samples, scores, per_image):
            sample.set_pred_score(score).set_pred_label(labels)
            english, chinese = vocabulary.names_of(labels.tolist())
            if english is not None:
                sample.set_field(english, 'pred_tags')
            if chinese is not None:
                sample.set_field(chinese, 'pred_tags_chinese')
        return data_samples


def with_category_encoder(model_type: type) -> Callable[..., RAM]:
    """A builder of ``model_type`` taking its
    :class:`~.vocabulary.CategoryEncoder`'s arguments flat, as the open-set
    configs write them (``openset_threshold``, ``text_batch_size``)."""

    def build(text_encoder: Optional[dict] = None,
              tokenizer: Optional[dict] = None,
              categories: Optional[CategorySpec] = None,
              templates: TemplateSpec = 'openai_imagenet',
              openset_threshold: float = 0.5,
              text_batch_size: int = 256,
              **kwargs) -> RAM:
        encoder = dict(text_encoder=text_encoder, tokenizer=tokenizer,
                       categories=categories, templates=templates,
                       threshold=openset_threshold, batch_size=text_batch_size)
        return model_type(category_encoder=encoder, **kwargs)

    build.__name__ = build.__qualname__ = f'{model_type.__name__}Openset'
    build.__doc__ = (f'{model_type.__name__} tagging categories of your '
                     'own; see :func:`with_category_encoder`.')
    return build


RAMOpenset = MODELS.register_module(module=with_category_encoder(RAM))


def load_ram_checkpoint(model: RAM,
                        filename: str,
                        map_location: Union[str, torch.device] = 'cpu',
                        logger: Optional[str] = 'current') -> dict:
    """Load a converted RAM / RAM++ checkpoint strictly, then
    :meth:`RAM.prepare_vocabulary`; the checkpoint is returned.

    Args:
        model (RAM): The model, built from a config.
        filename (str): A checkpoint of ``ram_to_mmprompt.py``.
        map_location (str | torch.device): Unused. Defaults to ``'cpu'``.
        logger (str, optional): Unused. Defaults to ``'current'``.
    """
    from mmprompt.utils.checkpoint import load_checkpoint
    checkpoint = load_checkpoint(model, filename)
    model.prepare_vocabulary(checkpoint.get('meta') or {}, source=filename)
    return checkpoint
