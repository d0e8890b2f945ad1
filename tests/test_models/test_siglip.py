# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from testing_utils import siglip
from torch.testing import assert_close

from mmprompt.converters.common import ConverterError
from mmprompt.converters.siglip import convert_siglip
from mmprompt.models.clip.zero_shot import is_causal
from mmprompt.models.siglip import SigLIPZeroShot
from mmprompt.registry import MODELS

PROMPTS = ['a photo of a cat.', 'A bad photo of the Golden_Retriever!',
           'itap of a plastic zebra', '']


@pytest.fixture(scope='module')
def tiny_pair(tmp_path_factory):
    """A tiny open_clip-layout reference and our SigLIPZeroShot loaded
    from it through the converter (seeded, fp32, eval)."""
    folder = tmp_path_factory.mktemp('siglip_tok')
    tokenizer_file = siglip.train_tokenizer(str(folder))
    torch.manual_seed(0)
    ref = siglip.TinyReference().eval()
    source = siglip.randomize_(ref.state_dict())
    ref.load_state_dict(source)
    model = MODELS.build(siglip.tiny_cfg(tokenizer_file)).eval()
    converted, meta = convert_siglip(source)
    model.load_state_dict(converted, strict=True)
    return ref, model, meta


def test_converter_maps_every_key(tiny_pair):
    """Every open_clip key is mapped (strict load above); the projection is
    transposed, the MAP head keeps timm's names; the arch is read."""
    ref, model, meta = tiny_pair
    source = ref.state_dict()
    converted, _ = convert_siglip(source)
    assert set(converted) == set(model.state_dict())
    assert torch.equal(converted['text_encoder.text_projection'],
                       source['text.text_projection.weight'].t())
    assert torch.equal(converted['visual.attn_pool.mlp.fc2.bias'],
                       source['visual.trunk.attn_pool.mlp.fc2.bias'])
    assert torch.equal(converted['visual.ln1.weight'],
                       source['visual.trunk.norm.weight'])
    assert converted['logit_bias'].item() == siglip.LOGIT_BIAS
    assert meta['arch'] == dict(
        vision_width=64, patch_size=8, image_size=32, vision_layers=2,
        embed_dim=64, text_width=64, text_layers=2, context_length=64,
        vocab_size=siglip.TINY_VOCAB)
    assert meta['source'] == 'siglip' and meta['dropped'] == []
    bad = dict(source, **{'visual.trunk.cls_token': torch.zeros(1, 1, 64)})
    with pytest.raises(ConverterError, match='1 unknown key.*cls_token'):
        convert_siglip(bad)


def test_tiny_siglip_matches_reference(tiny_pair):
    """Image and text features (normalised, 1e-5) and the logits with
    their bias (1e-4) equal timm + open_clip's for the same weights."""
    ref, model, _ = tiny_pair
    images = torch.randn(
        2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = model.tokenize(PROMPTS)
    with torch.no_grad():
        ref_img = F.normalize(ref.encode_image(images), dim=-1)
        ref_txt = F.normalize(ref.encode_text(ids), dim=-1)
        img = F.normalize(model.extract_image_feat(images), dim=-1)
        txt = F.normalize(model.extract_text_feat(ids), dim=-1)
        logits = model.compute_logits(images, ids)
    assert_close(img, ref_img, atol=1e-5, rtol=0)
    assert_close(txt, ref_txt, atol=1e-5, rtol=0)
    expected = 10.0 * ref_img @ ref_txt.t() + siglip.LOGIT_BIAS
    assert_close(logits, expected, atol=1e-4, rtol=0)


def test_bidirectional_tower_takes_full_rows_only(tiny_pair):
    """Cutting rows or sharing a prefix is wrong without a causal mask:
    the tower refuses both, and padding changes the feature."""
    _, model, _ = tiny_pair
    tower = model.text_encoder
    assert not is_causal(tower) and not is_causal(model.extract_text_feat)
    ids = model.tokenize(PROMPTS[:1])
    with pytest.raises(ValueError, match='rows of 10 tokens: a '
                       'bidirectional text tower takes rows padded to its '
                       'context length 64'):
        tower(ids[:, :10])
    with pytest.raises(ValueError, match='exact only under a causal mask'):
        tower.encode_prefix(tower.token_embedding(ids[:, :3]))
    with torch.no_grad():
        padded = tower(ids)
        ids[0, -1] = 0  # another pad id at the pooled position
        assert (tower(ids) - padded).abs().max() > 1e-3


def test_prototypes_are_the_plain_path(tiny_pair):
    """The prototype builder encodes whole rows for a bidirectional tower
    (no cut, no shared prefix): prototypes equal the mean of the
    normalised features of every template, computed one by one."""
    _, model, _ = tiny_pair
    categories = ['cat', 'golden retriever', 'plastic zebra']
    templates = ['a photo of a {}.', 'itap of a {}', 'a bad photo of the {}']
    protos = model.build_prototypes(categories, templates)
    with torch.no_grad():
        expected = torch.stack([
            F.normalize(
                F.normalize(
                    model.extract_text_feat(
                        model.tokenize([t.format(c) for t in templates])),
                    dim=-1).mean(0),
                dim=0) for c in categories
        ])
    assert_close(protos, expected, atol=1e-6, rtol=0)


def test_zero_shot_scores_are_sigmoid(tiny_pair):
    """pred_score = sigmoid(scale * cos + bias) per category; pred_label
    the largest logit."""
    _, model, _ = tiny_pair
    assert isinstance(model, SigLIPZeroShot)
    images = torch.randn(
        3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    protos = F.normalize(
        torch.randn(4, 64, generator=torch.Generator().manual_seed(3)),
        dim=-1)
    model.set_prototypes(protos)
    with torch.no_grad():
        feats = F.normalize(model.extract_image_feat(images), dim=-1)
        samples = model.predict(images)
    logits = 10.0 * feats @ protos.t() + siglip.LOGIT_BIAS
    scores = torch.stack([s.pred_score for s in samples])
    assert_close(scores, torch.sigmoid(logits), atol=1e-6, rtol=0)
    assert [s.pred_label.item() for s in samples] == \
        logits.argmax(-1).tolist()
    # Not a distribution over the categories.
    assert (scores.sum(-1) - 1).abs().min() > 1e-3


def test_siglip_defaults():
    """SigLIP's normalisation, no image projection and a logit bias come
    from the class, not only from the config."""
    cfg = siglip.tiny_cfg()
    for key in ('data_preprocessor', 'tokenizer'):
        cfg.pop(key)
    model = MODELS.build(cfg)
    assert model.data_preprocessor.mean.flatten().tolist() == [127.5] * 3
    assert model.data_preprocessor.std.flatten().tolist() == [127.5] * 3
    assert isinstance(model.visual_proj, torch.nn.Identity)
    assert model.logit_bias.item() == -10.0
    with pytest.raises(RuntimeError, match='has no tokenizer'):
        model.tokenize('a cat')
    cfg.proj_dims = 32
    with pytest.raises(ValueError, match='gives 64 channels, proj_dims is 32'):
        MODELS.build(cfg)


def test_coop_refuses_and_tip_adapter_uses_siglip(tiny_pair):
    """CoOp / CoCoOp refuse a bidirectional tower in one line; Tip-Adapter-F
    takes SigLIP's normalisation and its biased text logits."""
    from mmprompt.utils.errors import InvalidInputError
    _, model, _ = tiny_pair
    for name in ('CoOp', 'CoCoOp'):
        with pytest.raises(InvalidInputError, match=f'{name} needs a causal '
                           'text tower.*SigLIPZeroShot has a bidirectional'):
            MODELS.build(dict(type=name, clip=model, categories=['cat']))
    cfg = siglip.tiny_cfg()
    cfg.pop('data_preprocessor')
    tip = MODELS.build(
        dict(type='TipAdapterF', clip=cfg, categories=['cat', 'dog']))
    assert tip.data_preprocessor.mean.flatten().tolist() == [127.5] * 3
    tip = MODELS.build(
        dict(type='TipAdapterF', clip=model, categories=['cat', 'dog'],
             templates=['a photo of a {}.']))
    feats = F.normalize(torch.randn(2, 64), dim=-1)
    with torch.no_grad():
        text = tip.clip.scale_similarity(feats @ tip.get_prototypes().t())
        assert_close(tip.compute_logits(feats, alpha=0.0), text)
    assert_close(text - siglip.LOGIT_BIAS,
                 10.0 * feats @ tip.get_prototypes().t())


def test_descriptions_are_not_reported_cut(tiny_pair, monkeypatch):
    """Rows padded with SigLIP's pad id ('</s>') are not reported as
    truncated descriptions."""
    from mmprompt.models.clip import zero_shot
    _, model, _ = tiny_pair
    assert model.pad_id == 1
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    ids = zero_shot.tokenize_prompts(
        model.tokenize, ['a photo of a cat.', 'a small cat'], [False, True])
    assert ids.shape == (2, 64) and logged == []


def test_inferencers_preprocess_as_the_model_declares(tiny_pair, tmp_path):
    """ZeroShotClassifier, the bulk tasks (tools/infer.py) and example
    images all squash SigLIP's inputs (the model's preprocess_args), not
    CLIP's resize-and-crop."""
    import numpy as np
    from PIL import Image

    from mmprompt.apis import ZeroShotClassifier
    from mmprompt.apis.bulk import EmbedTask
    from mmprompt.datasets import CLIPPreprocess, load_example_images
    _, model, _ = tiny_pair
    assert model.preprocess_args == dict(
        scale=32, resize_mode='squash', interpolation='bicubic')
    image = np.random.default_rng(0).integers(0, 256, (40, 90, 3), np.uint8)
    expected = CLIPPreprocess(
        scale=32, resize_mode='squash')(dict(img=image))['img']
    expected = torch.from_numpy(expected).permute(2, 0, 1)
    classifier = ZeroShotClassifier(model)
    assert torch.equal(classifier.pipeline(image)['inputs'], expected)
    task = EmbedTask(model)
    assert torch.equal(task.transform(image)['inputs'], expected)
    path = tmp_path / 'cat.png'
    Image.fromarray(image[..., ::-1]).save(path)
    images, labels = load_example_images({'cat': [str(path)]}, ['cat'],
                                         model.preprocess_args)
    assert labels == [0] and torch.equal(images[0], expected)


def test_map_tower_sets_its_own_pooling():
    """No class token and patch tokens into the head are the tower's own
    settings; the head's MLP follows the tower's MLP width."""
    cfg = siglip.tiny_cfg().vision_backbone
    tower = MODELS.build(cfg)
    assert tower.cls_token is None and tower.out_type == 'raw'
    assert tower.attn_pool.mlp.fc1.out_features == \
        cfg.arch.feedforward_channels == 239
    assert tower.pooled_by == 'attn_pool'
    with pytest.raises(TypeError, match='MAPVisionTransformer sets '
                       'with_cls_token itself'):
        MODELS.build(dict(cfg, with_cls_token=True))


def test_last_block_runs_the_pooled_token_only(tiny_pair):
    """The bidirectional tower's last block computes its query, output
    projection and MLP for the pooled token alone: the features are those
    of every block run on every token (a reference written here)."""
    _, model, _ = tiny_pair
    tower = model.text_encoder
    ids = model.tokenize(PROMPTS)
    shapes = []
    hook = tower.resblocks[-1].mlp.register_forward_hook(
        lambda m, args, out: shapes.append(tuple(args[0].shape)))
    with torch.no_grad():
        feats = tower(ids)
        hook.remove()
        x = tower.token_embedding(ids) + tower.positional_embedding
        for block in tower.resblocks:
            x = block(x)
        ref = tower.ln_final(x)[:, -1] @ tower.text_projection
        ref = ref + tower.text_projection_bias
    assert shapes == [(len(PROMPTS), tower.embed_dims)]
    assert (feats - ref).abs().max() <= 1e-6


def test_identical_prompts_are_encoded_once(tiny_pair):
    """Prompts that canonicalise to the same ids (a name listed twice, a
    template differing in case and punctuation) run the tower once; the
    prototypes are those of every prompt encoded."""
    _, model, _ = tiny_pair
    categories = ['crane', 'cat', 'crane']
    templates = ['a photo of a {}.', 'A photo of a {}!', 'itap of a {}.']
    rows = []
    hook = model.text_encoder.register_forward_hook(
        lambda m, args, out: rows.append(len(args[0])))
    protos = model.build_prototypes(categories, templates)
    hook.remove()
    assert sum(rows) == 4  # of 9 prompts
    with torch.no_grad():
        ref = torch.stack([
            F.normalize(
                F.normalize(
                    model.extract_text_feat(
                        model.tokenize([t.format(c) for t in templates])),
                    dim=-1).mean(0),
                dim=-1) for c in categories
        ])
    assert (protos - ref).abs().max() <= 1e-6
    assert torch.equal(protos[0], protos[2])
    assert not protos.is_inference()


def test_zoo_configs_pipelines_follow_the_model():
    """Every SigLIP leaf config (ImageNet-1k and CIFAR-100) preprocesses as
    the model's image_preprocess says; CIFAR's arrays are RGB."""
    import glob
    import os.path as osp

    from mmengine.config import Config
    leaves = sorted(
        glob.glob(osp.join(siglip.REPO_ROOT, 'configs', 'siglip', '*.py')))
    assert len(leaves) == 14
    for path in leaves:
        cfg = Config.fromfile(path)
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        step = dict(cfg.test_dataloader.dataset.pipeline[0])
        assert step.pop('type') == 'CLIPPreprocess', path
        cifar = 'cifar100' in path
        assert step.pop('array_order', 'bgr') == ('rgb' if cifar else 'bgr')
        assert step == model.preprocess_args, path
        assert cfg.test_dataloader.dataset.type == (
            'CIFAR100' if cifar else 'ImageNet'), path
        assert (cfg.model.categories, cfg.model.templates) == (
            ('cifar100', 'openai_cifar') if cifar else
            ('imagenet', 'openai_imagenet')), path
