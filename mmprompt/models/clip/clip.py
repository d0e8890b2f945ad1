# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP on MMPreTrain: a feature extractor and a zero-shot classifier.

The model is `CLIP <https://arxiv.org/abs/2103.00020>`_ as released by OpenAI
(``clip/model.py``, MIT licence). The image tower is MMPreTrain's
``VisionTransformer`` configured to compute OpenAI's ViT exactly; the text
tower is :class:`~mmprompt.models.clip.text_encoder.CLIPTextTransformer`.
Prompt ensembling over templates follows OpenAI's ImageNet notebook and
open_clip's ``build_zero_shot_classifier`` (MIT licence), batched over all
classes at once. The code is written for mmprompt.
"""
import copy
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmprompt.registry import MODELS, TOKENIZER

# OpenAI's normalisation, for RGB images in [0, 255].
CLIP_MEAN = tuple(255 * m for m in (0.48145466, 0.4578275, 0.40821073))
CLIP_STD = tuple(255 * s for s in (0.26862954, 0.26130258, 0.27577711))

DEFAULT_TEMPLATES = ('a photo of a {}.', )


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


@MODELS.register_module()
class CLIP(BaseModel):
    """`CLIP <https://arxiv.org/abs/2103.00020>`_ image and text encoders.

    A concrete feature extractor: it embeds images and token ids into one
    space and scores them against each other. Predicting labels is left to
    subclasses such as :class:`CLIPZeroShot`. Inference only.

    Args:
        vision_backbone (dict): Config of the image tower, built with
            ``MODELS``; it must return a tuple whose last item is the pooled
            feature ``(N, C)`` and expose ``embed_dims``. OpenAI's ViT is
            MMPreTrain's ``VisionTransformer`` with ``pre_norm=True``,
            ``norm_cfg=dict(type='LN', eps=1e-5)``, ``out_type='cls_token'``
            and ``act_cfg=dict(type='mmpretrain.QuickGELU')`` in its
            ``layer_cfgs``.
        text_backbone (dict): Config of the text tower, e.g.
            ``dict(type='CLIPTextTransformer', ...)``. Its ``out_dims``
            defaults to ``proj_dims`` and must equal it.
        tokenizer (dict, optional): Config of the tokenizer, built with
            ``TOKENIZER``. Defaults to ``dict(type='CLIPTokenizer')``.
        proj_dims (int): Width of the joint embedding space. Defaults to 512.
        data_preprocessor (dict | nn.Module, optional): The data
            preprocessor, by default MMPreTrain's ``ClsDataPreprocessor``
            with OpenAI's mean and std and ``to_rgb=True`` (images loaded as
            BGR). A dict without ``type`` gets that type. Defaults to None.
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    def __init__(self,
                 vision_backbone: dict,
                 text_backbone: dict,
                 tokenizer: Optional[dict] = None,
                 proj_dims: int = 512,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(mean=CLIP_MEAN, std=CLIP_STD, to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = copy.deepcopy(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)

        self.visual = MODELS.build(copy.deepcopy(vision_backbone))
        if getattr(self.visual, 'out_type', 'cls_token') != 'cls_token':
            raise ValueError('the image tower must pool to the class token '
                             f"(out_type='cls_token'), got "
                             f'{self.visual.out_type!r}')
        self.visual_proj = nn.Linear(
            self.visual.embed_dims, proj_dims, bias=False)

        text_cfg = copy.deepcopy(text_backbone)
        text_cfg.setdefault('out_dims', proj_dims)
        if text_cfg['out_dims'] != proj_dims:
            raise ValueError(f"text_backbone out_dims ({text_cfg['out_dims']})"
                             f' differs from proj_dims ({proj_dims})')
        self.text_encoder = MODELS.build(text_cfg)

        self.tokenizer = TOKENIZER.build(
            copy.deepcopy(tokenizer or dict(type='CLIPTokenizer')))
        self.proj_dims = proj_dims
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

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

    def compute_logits(self, images: torch.Tensor,
                       texts: torch.Tensor) -> torch.Tensor:
        """Image-to-text logits: ``logit_scale.exp()`` times the cosine.

        Args:
            images (torch.Tensor): ``(N, 3, H, W)``.
            texts (torch.Tensor): Token ids, ``(M, L)``.

        Returns:
            torch.Tensor: ``(N, M)``.
        """
        return self.logit_scale.exp() * self.compute_similarity(images, texts)

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
    """Zero-shot image classification with CLIP and prompt templates.

    Each category gets a text prototype: the normalised mean embedding of
    the templates filled with its name. An image is scored against the
    prototypes with ``softmax(logit_scale.exp() * cosine)``.

    The prototypes live in the non-persistent buffer ``text_prototypes``,
    set by :meth:`set_categories` or :meth:`set_prototypes`. Loading weights
    into the model (``load_state_dict``, ``load_checkpoint``) clears them
    because they depend on the text tower; prototypes built from categories
    are then rebuilt by the next :meth:`predict`, hand-set ones must be set
    again. After changing weights in any other way, call
    :meth:`set_categories` again.

    Args:
        categories (Sequence[str], optional): Category names. Without them,
            call :meth:`set_categories` or :meth:`set_prototypes` before
            predicting. Defaults to None.
        templates (Sequence[str]): Prompt templates, format strings with one
            ``{}``. Defaults to ``('a photo of a {}.',)``.
        text_batch_size (int): Prompts encoded at once when building
            prototypes. Defaults to 256.
        **kwargs: Arguments of :class:`CLIP`.
    """

    def __init__(self,
                 categories: Optional[Sequence[str]] = None,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 text_batch_size: int = 256,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.text_batch_size = text_batch_size
        self.register_buffer('text_prototypes', None, persistent=False)
        # Prototypes need the final weights: the first predict builds them,
        # after any checkpoint is loaded.
        self.categories = None
        if categories is not None:
            self.categories = self._check_categories(categories)
        self.templates = self._check_templates(templates)
        # Whether the prototypes came from set_prototypes, and so cannot be
        # rebuilt from the categories and templates.
        self._hand_set = False

    @staticmethod
    def _check_categories(categories: Sequence[str]) -> List[str]:
        names_ok = not isinstance(categories, str) and all(
            isinstance(c, str) for c in categories)
        if not names_ok:
            raise TypeError('categories must be a sequence of strings')
        if len(categories) == 0:
            raise ValueError('categories is empty')
        return list(categories)

    @staticmethod
    def _check_templates(templates: Sequence[str]) -> Tuple[str, ...]:
        if isinstance(templates, str):
            raise TypeError('templates must be a sequence of format strings')
        if len(templates) == 0:
            raise ValueError('templates is empty')
        for template in templates:
            if not isinstance(template, str) or '{}' not in template:
                raise ValueError(f'template {template!r} is not a format '
                                 "string with '{}'")
        return tuple(templates)

    def build_prototypes(self, categories: Sequence[str],
                         templates: Sequence[str]) -> torch.Tensor:
        """One normalised text embedding per category, over the templates.

        Every template is filled with every category and all ``C * T``
        prompts are encoded together, in batches of ``text_batch_size``,
        each cut to the length of its longest prompt (exact: attention is
        causal and pooling reads the end-of-text token). A category's
        normalised prompt features are averaged and normalised again
        (OpenAI's prompt ensembling). Nothing is stored.

        Args:
            categories (Sequence[str]): Category names, ``C`` of them.
            templates (Sequence[str]): Format strings with one ``{}``,
                ``T`` of them.

        Returns:
            torch.Tensor: ``(C, proj_dims)`` on the model's device, unit rows.
        """
        prompts = [t.format(c) for c in categories for t in templates]
        device = self.logit_scale.device
        batch_size = self.text_batch_size
        with torch.inference_mode():
            feats = []
            for start in range(0, len(prompts), batch_size):
                tokens = self.tokenize(prompts[start:start + batch_size])
                # The end-of-text id is the largest of each row.
                length = int(tokens.argmax(dim=-1).max()) + 1
                feats.append(
                    F.normalize(
                        self.extract_text_feat(tokens[:, :length].to(device)),
                        dim=-1))
            feats = torch.cat(feats).reshape(
                len(categories), len(templates), -1)
            prototypes = F.normalize(feats.mean(dim=1), dim=-1)
        # A clone made outside inference mode is an ordinary tensor.
        return prototypes.clone()

    def set_categories(self,
                       categories: Sequence[str],
                       templates: Optional[Sequence[str]] = None) -> None:
        """Build and store the prototypes of ``categories`` now.

        Args:
            categories (Sequence[str]): Category names; label ``i`` is
                ``categories[i]``.
            templates (Sequence[str], optional): Prompt templates. Defaults
                to the current ones.
        """
        categories = self._check_categories(categories)
        templates = self._check_templates(self.templates if templates is
                                          None else templates)
        print_log(
            f'Building text prototypes: {len(categories)} categories x '
            f'{len(templates)} templates',
            logger='current')
        self.text_prototypes = self.build_prototypes(categories, templates)
        self.categories, self.templates = categories, templates
        self._hand_set = False

    def set_prototypes(self,
                       prototypes: torch.Tensor,
                       categories: Optional[Sequence[str]] = None) -> None:
        """Store ready-made prototypes, e.g. from example images.

        Args:
            prototypes (torch.Tensor): ``(C, proj_dims)``; rows are
                normalised here.
            categories (Sequence[str], optional): Their ``C`` names.
                Defaults to None.
        """
        if prototypes.dim() != 2 or prototypes.size(1) != self.proj_dims:
            raise ValueError(f'prototypes must be (C, {self.proj_dims}), got '
                             f'{tuple(prototypes.shape)}')
        if categories is not None:
            categories = self._check_categories(categories)
            if len(categories) != prototypes.size(0):
                raise ValueError(f'{len(categories)} categories for '
                                 f'{prototypes.size(0)} prototypes')
        self.text_prototypes = F.normalize(
            prototypes.detach().to(self.logit_scale), dim=-1)
        self.categories = categories
        self._hand_set = True

    def get_prototypes(self) -> torch.Tensor:
        """The current prototypes, built first if they were cleared.

        Returns:
            torch.Tensor: ``(C, proj_dims)``, unit rows.
        """
        if self.text_prototypes is None:
            if self.categories is None or self._hand_set:
                raise RuntimeError(
                    'no text prototypes: call set_categories(...) or '
                    'set_prototypes(...) (hand-set prototypes are cleared '
                    'when weights are loaded)')
            self.set_categories(self.categories, self.templates)
        return self.text_prototypes

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # New weights make the prototypes stale.
        self.text_prototypes = None

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Classify images among the categories.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(N, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill;
                new ones are made if None. Defaults to None.

        Returns:
            List[DataSample]: With ``pred_score`` ``(C,)`` (softmax of
            ``logit_scale.exp() * cosine``) and ``pred_label`` ``(1,)``.
        """
        prototypes = self.get_prototypes()
        image_feats = F.normalize(self.extract_image_feat(inputs), dim=-1)
        logits = self.logit_scale.exp() * image_feats @ prototypes.t()
        scores = logits.softmax(dim=-1)
        labels = scores.argmax(dim=-1, keepdim=True)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.size(0))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
