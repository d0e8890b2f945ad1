# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM and RAM++ image tagging on MMPreTrain.

`RAM <https://arxiv.org/abs/2306.03514>`_ (Recognize Anything) and `RAM++
<https://arxiv.org/abs/2310.15200>`_ tag an image with every label of a
vocabulary whose sigmoid score passes the label's threshold. The design
follows ``xinyu1205/recognize-anything`` (Apache-2.0); the code is written
for mmprompt: the image encoder is MMPreTrain's ``SwinTransformer`` and the
tagging head is :class:`~mmprompt.models.ram.tagging_head.RAMTaggingHead`.
Only tagging is built: no captioning decoder, no tag encoder, no BERT.

Weights come from RAM's checkpoints through
``tools/model_converters/ram_to_mmprompt.py``, which stores the per-tag
thresholds as the ``class_threshold`` buffer and the tag names in the
checkpoint's ``meta``. :func:`load_ram_checkpoint` loads both.
"""
import copy
import logging
import math
from typing import List, Optional, Sequence, Tuple, Union

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
from .preprocess import RAM_MEAN, RAM_STD

TagNames = Tuple[str, ...]


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
class RAM(BaseModel):
    """RAM's tagging network: image -> one logit per tag.

    The image tokens of the Swin encoder (its pooled mean first, then the
    final-norm tokens) are projected by ``image_proj``; the label queries
    ``relu(wordvec_proj(label_embed))`` attend to them in the tagging head;
    ``fc`` gives a logit per tag. A tag is selected where its sigmoid score
    is strictly above its threshold, unless it is in ``delete_tag_index``.

    Tag names are not part of the network; see :class:`RAMNormal`.

    Args:
        visual_encoder (dict): Config of MMPreTrain's ``SwinTransformer``.
            RAM's Swin-L/384 is ``arch='large', img_size=384,
            window_size=12, out_indices=(3, )`` (final LayerNorm ``norm3``).
        tagging_head (dict, optional): Config of the tagging head. Defaults
            to ``dict(type='RAMTaggingHead')`` (RAM's 2 x 768 decoder).
        num_classes (int): Number of tags. Defaults to 4585.
        embed_dims (int): Width of the label embeddings and of
            ``image_proj`` (CLIP's text width). Defaults to 512.
        threshold (float): Initial threshold of every tag; a converted
            checkpoint replaces them (``class_threshold``). Defaults to 0.68.
        delete_tag_index (Sequence[int]): Tags never selected.
            Defaults to ().
        fast_attention (bool): Run the Swin window attention through
            ``F.scaled_dot_product_attention``
            (:func:`~mmprompt.models.utils.enable_sdpa`; same parameters,
            within 1e-6 of MMPreTrain's ``WindowMSA`` in fp32, about 30%
            faster for Swin-L/384 on a CPU). Defaults to True.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            MMPreTrain's ``ClsDataPreprocessor`` with ImageNet's mean and std
            and ``to_rgb=True``; a dict without ``type`` gets that type.
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    def __init__(self,
                 visual_encoder: dict,
                 tagging_head: Optional[dict] = None,
                 num_classes: int = 4585,
                 embed_dims: int = 512,
                 threshold: float = 0.68,
                 delete_tag_index: Sequence[int] = (),
                 fast_attention: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_preprocessor(data_preprocessor, RAM_MEAN,
                                                   RAM_STD)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.delete_tag_index = tuple(int(i) for i in delete_tag_index)
        outside = [
            i for i in self.delete_tag_index if not 0 <= i < num_classes
        ]
        if outside:
            raise ValueError(f'delete_tag_index {outside} outside the '
                             f'{num_classes} classes')

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
        self._label_queries = TensorCache()

    @property
    def compile_modules(self) -> List[str]:
        """Submodules :func:`~mmprompt.models.utils.compile_model` compiles:
        the encoder and each tagging-head layer. The label queries, the
        head's chunk loop and the thresholds stay eager."""
        return ['visual_encoder'] + [
            f'tagging_head.layers.{i}'
            for i in range(len(self.tagging_head.layers))
        ]

    # The vocabulary being scored. Open-set subclasses swap it.
    @property
    def num_tags(self) -> int:
        """int: Number of tags scored per image."""
        return self.num_classes

    def tag_label_embed(self) -> torch.Tensor:
        """Label embeddings of the scored tags, ``(num_tags * D, C)``."""
        return self.label_embed

    def tag_thresholds(self) -> torch.Tensor:
        """Thresholds of the scored tags, ``(num_tags, )``."""
        return self.class_threshold

    def deleted_tags(self) -> Tuple[int, ...]:
        """Indices of scored tags never selected."""
        return self.delete_tag_index

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images into RAM's image tokens.

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.

        Returns:
            torch.Tensor: ``(B, 1 + h * w, C)``: the mean of the final
            tokens, then the tokens (after the encoder's final norm).
        """
        feat = self.visual_encoder(images)[-1]
        tokens = feat.flatten(2).transpose(1, 2)
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

    def compute_label_queries(self,
                              image_embeds: torch.Tensor) -> torch.Tensor:
        """The tagging head's queries, shared by every image.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output,
                ``(B, N, C)`` (unused by RAM).

        Returns:
            torch.Tensor: ``relu(wordvec_proj(label_embed))``, ``(K, H)``,
            computed once while the embeddings and weights are unchanged
            (inference only).
        """
        embed, proj = self.tag_label_embed(), self.wordvec_proj
        return self._label_queries.get((embed, proj.weight, proj.bias),
                                       lambda: F.relu(proj(embed)))

    def compute_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Score every tag on every image.

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.

        Returns:
            torch.Tensor: Logits, ``(B, num_tags)``.
        """
        image_embeds = self.image_proj(self.extract_image_feat(images))
        queries = self.compute_label_queries(image_embeds)
        return self.fc(self.tagging_head(queries, image_embeds)).squeeze(-1)

    def select_tags(self, scores: torch.Tensor) -> torch.Tensor:
        """Threshold scores: ``score > threshold``, deleted tags off.

        Args:
            scores (torch.Tensor): Sigmoid scores, ``(B, num_tags)``.

        Returns:
            torch.Tensor: Boolean ``(B, num_tags)``.
        """
        selected = scores > self.tag_thresholds()
        deleted = self.deleted_tags()
        if deleted:
            selected[:, list(deleted)] = False
        return selected

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, list]:
        """The MMEngine entry point, for inference only.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill with
                predictions. Defaults to None.
            mode (str): ``'tensor'`` returns the logits, ``'predict'`` the
                data samples of :meth:`predict`. Defaults to ``'tensor'``.

        Returns:
            torch.Tensor | list: Depends on ``mode``.
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
    def predict(
            self,
            images: torch.Tensor,
            data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        """Tag images.

        Args:
            images (torch.Tensor): Preprocessed images, ``(B, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill; new
                ones are made if None. Defaults to None.

        Returns:
            List[DataSample]: Per image, ``pred_score`` (the sigmoid score of
            every tag, ``(num_tags, )``) and ``pred_label`` (the selected tag
            indices, ascending). Subclasses with tag names add them.
        """
        scores = self.compute_logits(images).sigmoid()
        selected = self.select_tags(scores)
        # Selected indices of all images, ascending, cut per image.
        indices = selected.nonzero()[:, 1]
        per_image = indices.split(selected.sum(dim=1).tolist())
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.size(0))]
        for sample, score, labels in zip(data_samples, scores, per_image):
            sample.set_pred_score(score).set_pred_label(labels)
            self._add_tag_names(sample, labels.tolist())
        return data_samples

    def _add_tag_names(self, sample: DataSample, labels: List[int]) -> None:
        """Hook for subclasses that know the tags' names."""


@MODELS.register_module()
class RAMNormal(RAM):
    """RAM with its closed vocabulary: tag names in English and Chinese.

    The names come from the converted checkpoint's ``meta``, through
    :func:`load_ram_checkpoint` or :meth:`set_tags_from_meta`, or from
    :meth:`set_tags`. :meth:`predict` then also fills ``pred_tags`` and, when
    known, ``pred_tags_chinese``: the names of ``pred_label``, in vocabulary
    order. The caller joins them (RAM prints ``' | '.join(...)``). Without
    names, predictions hold indices and scores only.

    Args:
        **kwargs: The arguments of :class:`RAM`.
    """

    tag_list: Optional[TagNames] = None
    tag_list_chinese: Optional[TagNames] = None

    def _check_names(self, names: Sequence[str], what: str) -> TagNames:
        names = tuple(names)
        if len(names) != self.num_classes:
            raise ValueError(f'{what} has {len(names)} names, the model '
                             f'{self.num_classes} classes')
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f'{what} must hold strings')
        return names

    def set_tags(self,
                 tag_list: Sequence[str],
                 tag_list_chinese: Optional[Sequence[str]] = None,
                 thresholds: Optional[Sequence[float]] = None) -> None:
        """Set the vocabulary's names and, optionally, thresholds.

        Args:
            tag_list (Sequence[str]): English names, one per class.
            tag_list_chinese (Sequence[str], optional): Chinese names, kept
                exactly (RAM's have trailing spaces). Defaults to None.
            thresholds (Sequence[float], optional): Per-class thresholds in
                [0, 1]; None keeps ``class_threshold``. Defaults to None.
        """
        tag_list = self._check_names(tag_list, 'tag_list')
        if tag_list_chinese is not None:
            tag_list_chinese = self._check_names(tag_list_chinese,
                                                 'tag_list_chinese')
        if thresholds is not None:
            thr = torch.as_tensor(thresholds, dtype=torch.float32)
            if thr.shape != (self.num_classes, ):
                raise ValueError(f'thresholds must have shape '
                                 f'({self.num_classes},), got '
                                 f'{tuple(thr.shape)}')
            if not bool(((thr >= 0) & (thr <= 1)).all()):
                raise ValueError('thresholds must lie in [0, 1]')
            self.class_threshold.copy_(thr)
        self.tag_list = tag_list
        self.tag_list_chinese = tag_list_chinese

    def set_tags_from_meta(self, meta: dict) -> None:
        """Set the names stored by RAM's converter in a checkpoint's meta.

        Args:
            meta (dict): ``checkpoint['meta']``, with ``tag_list`` and
                optionally ``tag_list_chinese``.
        """
        if not isinstance(meta, dict) or meta.get('tag_list') is None:
            raise ValueError(
                'the checkpoint meta has no tag_list; convert the original '
                'checkpoint with tools/model_converters/ram_to_mmprompt.py '
                '--tag-list ...')
        self.set_tags(meta['tag_list'], meta.get('tag_list_chinese'))

    def tag_names(self) -> Tuple[Optional[TagNames], Optional[TagNames]]:
        """English and Chinese names of the scored tags (None if unknown)."""
        return self.tag_list, self.tag_list_chinese

    def _add_tag_names(self, sample: DataSample, labels: List[int]) -> None:
        english, chinese = self.tag_names()
        if english is not None:
            sample.set_field([english[i] for i in labels], 'pred_tags')
        if chinese is not None:
            sample.set_field([chinese[i] for i in labels], 'pred_tags_chinese')


@MODELS.register_module()
class RAMPlus(RAMNormal):
    """RAM++: label queries mixed per image from several descriptions.

    ``label_embed`` holds ``num_descriptions`` CLIP text embeddings per tag,
    class-major. For each image, the softmax over a tag's descriptions of
    ``exp(reweight_scale) * <normalised image token 0, description>`` weights
    them into one label embedding; the rest is RAM.

    Args:
        num_descriptions (int): Descriptions per tag. Defaults to 51.
        **kwargs: The arguments of :class:`RAM`.
    """

    def __init__(self, num_descriptions: int = 51, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_descriptions = num_descriptions
        self.label_embed = nn.Parameter(
            torch.zeros(self.num_classes * num_descriptions, self.embed_dims))
        self.reweight_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def description_weights(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Softmax weights of each tag's descriptions, per image.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``;
                token 0 is the CLIP-aligned image embedding.

        Returns:
            torch.Tensor: ``(B, num_tags, D)``.
        """
        label_embed = self.tag_label_embed()
        image = image_embeds[:, 0]
        image = image / image.norm(dim=-1, keepdim=True)
        sim = self.reweight_scale.exp() * image @ label_embed.t()
        return sim.view(image.size(0), self.num_tags, -1).softmax(dim=-1)

    def reweight_label_embed(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Per-image label embeddings: descriptions mixed by their weights.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``.

        Returns:
            torch.Tensor: ``(B, num_tags, C)``.
        """
        weights = self.description_weights(image_embeds)
        label_embed = self.tag_label_embed().view(*weights.shape[1:], -1)
        return torch.einsum('bkd,kdc->bkc', weights, label_embed)

    def compute_label_queries(self,
                              image_embeds: torch.Tensor) -> torch.Tensor:
        """The tagging head's queries, one set per image.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``.

        Returns:
            torch.Tensor: ``(B, num_tags, H)``.
        """
        return F.relu(
            self.wordvec_proj(self.reweight_label_embed(image_embeds)))


def load_ram_checkpoint(model: RAM,
                        filename: str,
                        map_location: Union[str, torch.device] = 'cpu',
                        logger: Optional[str] = 'current') -> dict:
    """Load a converted RAM / RAM++ checkpoint and make the model ready.

    In order: an open-set model's text encoder gets its weights from its own
    ``init_cfg`` (if not initialised yet); the RAM weights load strictly
    (thresholds included, as the ``class_threshold`` buffer); tag names come
    from the checkpoint's ``meta`` (a warning if it has none); an open-set
    model configured with ``categories`` builds their label embeddings.

    Args:
        model (RAM): The model, built from a config.
        filename (str): A checkpoint written by
            ``tools/model_converters/ram_to_mmprompt.py``.
        map_location (str | torch.device): Defaults to ``'cpu'``.
        logger (str, optional): Logger for load messages.
            Defaults to ``'current'``.

    Returns:
        dict: The loaded checkpoint (``state_dict`` and ``meta``).
    """
    text_encoder = getattr(model, 'text_encoder', None)
    if text_encoder is not None and not text_encoder.is_init:
        text_encoder.init_weights()
    from mmprompt.utils.checkpoint import load_checkpoint
    checkpoint = load_checkpoint(model, filename)
    meta = checkpoint.get('meta') or {}
    if isinstance(model, RAMNormal) and meta.get('tag_list') is not None:
        model.set_tags_from_meta(meta)
    elif isinstance(model, RAMNormal):
        print_log(
            f'{filename} holds no tag names (converted without --tag-list): '
            'predictions will give tag indices only',
            logger='current',
            level=logging.WARNING)
    if getattr(model, 'categories', None) is not None:
        model.set_openset()
    return checkpoint
