# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM / RAM++ against the reference vectors of ``shared/ram/vectors``.

Tiny models are built from the real configs with small overrides, loaded
with weights converted by our converter, and must give the reference's
numbers (1e-5) and tags (exactly).
"""
import copy
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmprompt.converters import convert_ram
from mmprompt.models.clip.tokenizer import CLIPTokenizer
from mmprompt.models.ram import ram_openset_prompts, resolve_ram_templates
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', 'ram')
ATOL = 1e-5

# The tiny reference model: Swin 12 wide with RAM-L's stage resolutions
# (window 12 at 384 px), a 64-wide tagging head.
TINY_SWIN = dict(
    arch=dict(embed_dims=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]))
TINY_HEAD = dict(embed_dims=64, feedforward_channels=128)
TINY_TEXT = dict(
    type='CLIPTextTransformer',
    vocab_size=49408,
    context_length=77,
    embed_dims=32,
    num_layers=2,
    num_heads=4,
    out_dims=512)


def tiny_cfg(config: str, num_classes: int, **overrides) -> Config:
    """The model of ``configs/ram/<config>`` shrunk to the tiny vectors."""
    cfg = Config.fromfile(osp.join(CONFIGS, config)).model
    cfg.visual_encoder.update(TINY_SWIN)
    cfg.tagging_head.update(TINY_HEAD)
    cfg.num_classes = num_classes
    cfg.update(overrides)
    return cfg


def load(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


class Vectors:
    """One model's reference files, loaded once."""

    def __init__(self, root: str, name: str) -> None:
        with open(osp.join(root, f'{name}_tiny_expected.json')) as f:
            self.meta = json.load(f)
        self.expected = load(osp.join(root, f'{name}_tiny_expected.pth'))
        self.state_dict = load(osp.join(root, f'{name}_tiny_state_dict.pth'))
        with open(osp.join(root, f'{name}_tiny_openset.json')) as f:
            self.openset_meta = json.load(f)
        self.openset = load(osp.join(root, f'{name}_tiny_openset.pth'))
        self.images = load(osp.join(root, 'inputs.pth'))['images']

    def converted(self):
        m = self.meta
        return convert_ram(self.state_dict, m['tags_en'], m['tags_zh'],
                           m['thresholds'])

    def build(self, config: str, **overrides):
        converted, meta = self.converted()
        model = MODELS.build(
            tiny_cfg(config, self.meta['num_class'], **overrides))
        model.load_state_dict(converted, strict=True)
        model.set_tags_from_meta(meta)
        return model.eval()


@pytest.fixture(scope='module')
def ram(ram_vectors_dir):
    return Vectors(ram_vectors_dir, 'ram')


@pytest.fixture(scope='module')
def ram_plus(ram_vectors_dir):
    return Vectors(ram_vectors_dir, 'ram_plus')


def joined(samples, field):
    return [' | '.join(s.get(field)) for s in samples]


def test_data_preprocessor_matches_reference(ram_vectors_dir):
    """MMPreTrain's pipeline (cv2 BGR load, PIL resize) and the config's
    data preprocessor give RAM's tensors exactly on these PNGs (cv2 and PIL
    decode them alike; RAMPreprocess is the pipeline for every file, see
    test_tagging_dataset)."""
    from mmcv.transforms import Compose
    images = load(osp.join(ram_vectors_dir, 'inputs.pth'))['images']
    model = MODELS.build(tiny_cfg('ram_swin-large-p4-w12_384px_normal.py', 4))
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(384, 384),
            interpolation='bilinear',
            backend='pillow'),
        dict(type='PackInputs'),
    ])
    names = ['img0_rgb_320x240.png', 'img1_gray_500x300.png']
    data = [
        pipeline(dict(img_path=osp.join(ram_vectors_dir, 'images', n)))
        for n in names
    ]
    batch = model.data_preprocessor(
        dict(
            inputs=[d['inputs'] for d in data],
            data_samples=[d['data_samples'] for d in data]))
    assert torch.equal(batch['inputs'], images)


# chunk: the tagging head decodes all tags at once, or in chunks of 3
# (image, tag) rows: one tag at a time for the two images.
@pytest.mark.parametrize('delete,chunk', [(False, None), (True, None),
                                          (False, 3)])
def test_ram_tiny_vectors(ram, delete, chunk):
    exp, m = ram.expected, ram.meta
    overrides = dict(delete_tag_index=m['expected']['delete_tag_index']) \
        if delete else {}
    model = ram.build('ram_swin-large-p4-w12_384px_normal.py', **overrides)
    model.tagging_head.cpu_chunk_rows = chunk
    x = ram.images
    with torch.no_grad():
        swin = model.extract_image_feat(x)
        image_embeds = model.image_proj(swin)
        queries = model.wordvec_proj(model.label_embed)
        tagging = model.tagging_head(F.relu(queries), image_embeds)
        logits = model.compute_logits(x)
        samples = model.predict(x)
    for got, key in [(swin, 'swin_out'), (image_embeds, 'image_embeds'),
                     (queries, 'wordvec_proj_out'), (tagging, 'tagging_embed'),
                     (logits, 'logits')]:
        torch.testing.assert_close(got, exp[key], atol=ATOL, rtol=0)
    probs = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(probs, exp['probs'], atol=ATOL, rtol=0)
    suffix = '_with_delete' if delete else ''
    assert joined(samples, 'pred_tags') == m['expected']['tags_en' + suffix]
    assert joined(samples, 'pred_tags_chinese') == \
        m['expected']['tags_zh' + suffix]
    targets = exp['targets'].clone()
    if delete:
        targets[:, m['expected']['delete_tag_index']] = False
    for sample, row in zip(samples, targets):
        assert sample.pred_label.tolist() == row.nonzero()[:, 0].tolist()


def test_ram_tiny_intermediates(ram, ram_vectors_dir):
    inter = load(osp.join(ram_vectors_dir, 'ram_tiny_intermediates.pth'))
    model = ram.build('ram_swin-large-p4-w12_384px_normal.py')
    encoder = model.visual_encoder
    with torch.no_grad():
        x, hw = encoder.patch_embed(ram.images)
        torch.testing.assert_close(
            x, inter['swin.patch_embed'], atol=ATOL, rtol=0)
        for i, stage in enumerate(encoder.stages):
            x, hw = stage(x, hw)
            torch.testing.assert_close(
                x, inter[f'swin.layers.{i}'], atol=ATOL, rtol=0)
        torch.testing.assert_close(
            encoder.norm3(x), inter['swin.norm'], atol=ATOL, rtol=0)
        image_embeds = model.image_proj(model.extract_image_feat(ram.images))
        h = F.relu(model.wordvec_proj(model.label_embed))
        for i, layer in enumerate(model.tagging_head.layers):
            h = layer(h, *layer.cross_attn.project_memory(image_embeds))
            torch.testing.assert_close(
                h, inter[f'tagging_head.layer.{i}'], atol=ATOL, rtol=0)


@pytest.mark.parametrize('chunk', [None, 3])
def test_ram_plus_tiny_vectors(ram_plus, chunk):
    exp, m = ram_plus.expected, ram_plus.meta
    model = ram_plus.build('ram-plus_swin-large-p4-w12_384px_normal.py')
    model.tagging_head.cpu_chunk_rows = chunk
    assert model.label_embed.shape == (8 * 51, 512)
    x = ram_plus.images
    with torch.no_grad():
        image_embeds = model.image_proj(model.extract_image_feat(x))
        weights = model.description_weights(image_embeds)
        mixed = model.reweight_label_embed(image_embeds)
        logits = model.compute_logits(x)
        samples = model.predict(x)
    for got, key in [(image_embeds, 'image_embeds'),
                     (weights, 'description_weights'),
                     (mixed, 'wordvec_proj_in'),
                     (model.wordvec_proj(mixed), 'wordvec_proj_out'),
                     (logits, 'logits')]:
        torch.testing.assert_close(got, exp[key], atol=ATOL, rtol=0)
    probs = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(probs, exp['probs'], atol=ATOL, rtol=0)
    assert joined(samples, 'pred_tags') == m['expected']['tags_en']
    assert joined(samples, 'pred_tags_chinese') == m['expected']['tags_zh']


def test_ram_plus_reweighting_equals_loop(ram_plus):
    """The batched einsum equals a per-image, per-tag loop."""
    model = ram_plus.build('ram-plus_swin-large-p4-w12_384px_normal.py')
    g = torch.Generator().manual_seed(0)
    image_embeds = torch.randn(3, 5, 512, generator=g)
    with torch.no_grad():
        mixed = model.reweight_label_embed(image_embeds)
        scale = model.reweight_scale.exp()
        table = model.label_embed.view(8, 51, 512)
        for b in range(3):
            image = image_embeds[b, 0] / image_embeds[b, 0].norm()
            for k in range(8):
                w = torch.softmax(scale * table[k] @ image, dim=0)
                expected = (w[:, None] * table[k]).sum(dim=0)
                torch.testing.assert_close(
                    mixed[b, k], expected, atol=1e-6, rtol=0)


class RecordedEncoder:
    """A fake ``encode_text``: hands out the reference's rows in order and
    records the texts it was given."""

    def __init__(self, embeddings: torch.Tensor) -> None:
        self.embeddings = embeddings
        self.texts = []
        self.calls = 0

    def __call__(self, texts):
        start = len(self.texts)
        self.texts += list(texts)
        self.calls += 1
        return self.embeddings[start:len(self.texts)]


def test_ram_openset_tiny(ram, ram_data_dir):
    om, ref = ram.openset_meta, ram.openset
    templates = osp.join(ram_data_dir, 'openset_templates.json')
    model = ram.build(
        'ram_swin-large-p4-w12_384px_openset.py',
        text_encoder=None,
        templates=templates)
    encoder = RecordedEncoder(ref['text_embeddings'])
    with torch.no_grad():  # closed-set queries are cached first
        closed = model.compute_logits(ram.images)
    torch.testing.assert_close(
        closed, ram.expected['logits'], atol=ATOL, rtol=0)
    model.set_openset(om['categories'], encode_text=encoder)
    assert encoder.texts == om['texts']
    assert encoder.calls == 2  # 504 prompts in batches of 256
    torch.testing.assert_close(
        model.openset_label_embed, ref['label_embed'], atol=1e-6, rtol=0)
    assert model.vocabulary.thresholds.tolist() == [0.5] * 8
    with torch.no_grad():
        queries = model.wordvec_proj(model.vocabulary.label_embed)
        samples = model.predict(ram.images)
    torch.testing.assert_close(
        queries, ref['wordvec_proj_out'], atol=ATOL, rtol=0)
    probs = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(probs, ref['probs'], atol=ATOL, rtol=0)
    assert joined(samples, 'pred_tags') == om['expected']['tags_en']
    assert all('pred_tags_chinese' not in s for s in samples)
    # Back to the closed vocabulary.
    model.clear_openset()
    with torch.no_grad():
        samples = model.predict(ram.images)
    assert joined(samples, 'pred_tags') == ram.meta['expected']['tags_en']


def test_ram_plus_openset_tiny(ram_plus, ram_data_dir):
    om, ref = ram_plus.openset_meta, ram_plus.openset
    with open(
            osp.join(ram_data_dir, 'datasets',
                     'openimages_rare_200_llm_tag_descriptions.json')) as f:
        items = json.load(f)
    offset = om['descriptions_offset']
    items = items[offset:offset + len(om['categories'])]
    model = ram_plus.build(
        'ram-plus_swin-large-p4-w12_384px_openset.py', text_encoder=None)
    encoder = RecordedEncoder(ref['text_embeddings'])
    model.set_openset(items, encode_text=encoder)
    assert encoder.texts == [
        t for item in items for t in item[next(iter(item))]
    ]
    torch.testing.assert_close(
        model.openset_label_embed, ref['label_embed'], atol=1e-6, rtol=0)
    with torch.no_grad():
        image_embeds = model.image_proj(
            model.extract_image_feat(ram_plus.images))
        mixed = model.reweight_label_embed(image_embeds)
        samples = model.predict(ram_plus.images)
    torch.testing.assert_close(
        mixed, ref['wordvec_proj_in'], atol=ATOL, rtol=0)
    probs = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(probs, ref['probs'], atol=ATOL, rtol=0)
    assert joined(samples, 'pred_tags') == om['expected']['tags_en']


def test_ram_plus_openset_plain_names_and_errors(ram_plus, tmp_path):
    model = ram_plus.build(
        'ram-plus_swin-large-p4-w12_384px_openset.py',
        text_encoder=None,
        templates=['a photo of {article} {}.', 'the {}.'])
    g = torch.Generator().manual_seed(1)

    def encode(texts):
        return torch.randn(len(texts), 512, generator=g)

    with pytest.raises(ValueError, match=r"'b': 2, 'c': 3"):
        model.set_openset([{
            'a': ['x', 'y']
        }, {
            'b': ['p', 'q']
        }, {
            'c': ['1', '2', '3']
        }],
                          encode_text=encode)
    # A plain name gets the template ensemble, repeated to 2 descriptions;
    # the mixing gives that embedding back, for every image.
    model.set_openset([{'cat': ['x', 'y']}, 'apple'], encode_text=encode)
    embed = model.openset_label_embed
    assert embed.shape == (4, 512)
    torch.testing.assert_close(embed[2], embed[3], atol=0, rtol=0)
    assert not torch.equal(embed[0], embed[1])
    with torch.no_grad():
        mixed = model.reweight_label_embed(torch.randn(2, 3, 512))
    torch.testing.assert_close(mixed[:, 1], embed[2].expand(2, -1))
    # Only names: one embedding per category.
    model.set_openset(['cat', 'apple'], encode_text=encode)
    assert model.openset_label_embed.shape == (2, 512)
    # From files: a JSON list of {name: [descriptions]}, a text list.
    path = tmp_path / 'descriptions.json'
    path.write_text(json.dumps([{'a': ['x', 'y', 'z']}, {'b': ['p']}]))
    with pytest.raises(ValueError, match=r"'a': 3, 'b': 1"):
        model.set_openset(str(path), encode_text=encode)
    path.write_text(json.dumps([{'a': ['x', 'y', 'z']}, 'b', {'c': 'q'}]))
    with pytest.raises(ValueError, match=r"'a': 3, 'c': 1"):
        model.set_openset(str(path), encode_text=encode)
    path = tmp_path / 'names.txt'
    path.write_text('cat\n\nAle\n')
    model.set_openset(str(path), encode_text=encode, threshold=0.3)
    vocabulary = model.vocabulary
    assert (vocabulary.names, vocabulary.names_chinese) == (('cat', 'Ale'),
                                                            None)
    assert model.vocabulary.thresholds.tolist() == pytest.approx([0.3, 0.3])


def test_openset_prompts_and_templates(ram_data_dir):
    templates = resolve_ram_templates(
        osp.join(ram_data_dir, 'openset_templates.json'))
    assert len(templates) == 63
    assert len(resolve_ram_templates('openai_imagenet')) == 80
    prompts = ram_openset_prompts(
        ['apple', 'Apple', 'ice_cream/Gelato.'],
        ['There is {article} {} in the scene.', 'a {}.', 'the {}', 'itap {}'])
    assert prompts == [
        'There is an apple in the scene.', 'This is a apple.',
        'This is the apple', 'itap apple', 'There is a apple in the scene.',
        'This is a apple.', 'This is the apple', 'itap apple',
        'There is an ice cream or gelato in the scene.',
        'This is a ice cream or gelato.', 'This is the ice cream or gelato',
        'itap ice cream or gelato'
    ]
    with pytest.raises(ValueError, match='exactly one'):
        resolve_ram_templates(['{article} photo'])


def test_openset_embeddings_from_clip_text_encoder(ram):
    """The configured text tower gives the embeddings built by hand."""
    torch.manual_seed(0)
    model = ram.build(
        'ram_swin-large-p4-w12_384px_openset.py',
        text_encoder=TINY_TEXT,
        templates=['a photo of {article} {}.', 'itap of the {}.'],
        text_batch_size=3)
    categories = ['Aerial photography', 'apple', 'umbrella_stand']
    model.set_openset(categories)
    tokenizer = CLIPTokenizer()
    expected = []
    with torch.no_grad():
        for name, article in [('aerial photography', 'a'), ('apple', 'an'),
                              ('umbrella stand', 'an')]:
            texts = [
                f'This is a photo of {article} {name}.', f'itap of the {name}.'
            ]
            feats = model.text_encoder(tokenizer.tokenize(texts))
            feats = feats / feats.norm(dim=-1, keepdim=True)
            mean = feats.mean(dim=0)
            expected.append(mean / mean.norm())
    torch.testing.assert_close(
        model.openset_label_embed, torch.stack(expected), atol=1e-6, rtol=0)

    # Cached by content; new text-encoder weights empty the cache.
    calls = []
    encoder = model.category_encoder
    original = encoder.encode_text
    encoder.encode_text = lambda texts: calls.append(texts) or original(texts)
    model.set_openset(list(categories))
    assert calls == []
    model.text_encoder.load_state_dict(model.text_encoder.state_dict())
    model.set_openset(categories)
    # One call for all 6 prompts: it batches them itself (3 a batch).
    assert len(calls) == 1
    model.load_state_dict(model.state_dict())
    model.set_openset(categories)
    assert len(calls) == 2
    # A copy's hook empties the copy's cache, not the original's.
    clone = copy.deepcopy(model)
    clone.text_encoder.load_state_dict(clone.text_encoder.state_dict())
    assert clone.category_encoder._cache == {}
    model.set_openset(categories)
    assert len(calls) == 2
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        model.set_openset(categories, threshold=1.5)


def test_openset_descriptions_truncated_by_tokenizer(ram_plus):
    torch.manual_seed(0)
    model = ram_plus.build(
        'ram-plus_swin-large-p4-w12_384px_openset.py', text_encoder=TINY_TEXT)
    long = 'a very long description ' * 40
    model.set_openset([{'x': [long, 'short one']}, {'y': ['b', 'c']}])
    tokens = CLIPTokenizer().tokenize([long, 'short one', 'b', 'c'],
                                      truncate=True)
    with torch.no_grad():
        feats = model.text_encoder(tokens)
    torch.testing.assert_close(
        model.openset_label_embed,
        feats / feats.norm(dim=-1, keepdim=True),
        atol=1e-6,
        rtol=0)


def test_ram_openset_rejects_descriptions_and_needs_categories(ram):
    model = ram.build(
        'ram_swin-large-p4-w12_384px_openset.py', text_encoder=None)
    with pytest.raises(ValueError, match='none configured'):
        model.set_openset()
    with pytest.raises(ValueError, match='RAMPlusOpenset'):
        model.set_openset([{'a': ['x']}], encode_text=lambda t: None)
    with pytest.raises(RuntimeError, match='no text_encoder'):
        model.set_openset(['cat'])
    with pytest.raises(ValueError, match='duplicate category names'):
        model.set_openset(['cat', 'cat'], encode_text=lambda t: None)


def test_thresholds_delete_and_names(ram):
    model = ram.build(
        'ram_swin-large-p4-w12_384px_normal.py', delete_tag_index=[1])
    thr = torch.tensor(ram.meta['thresholds'])
    assert torch.equal(model.class_threshold, thr)
    scores = torch.stack([thr, thr + 1e-3, thr - 1e-3]).clamp(0, 1)
    selected = model.select_tags(scores)
    # Strictly above: equal never fires, nor does 1.0 (class 9, 'body').
    assert not selected[0].any()
    expected = (thr + 1e-3 <= 1) & (torch.arange(20) != 1)
    assert selected[1].tolist() == expected.tolist()
    assert not selected[2].any()
    with pytest.raises(ValueError, match='3 names, the model 20'):
        model.set_tags(['a', 'b', 'c'])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        model.set_tags(ram.meta['tags_en'], thresholds=[2.0] * 20)
    with pytest.raises(ValueError, match='no tag_list'):
        model.set_tags_from_meta({})
    with pytest.raises(ValueError, match='outside'):
        ram.build(
            'ram_swin-large-p4-w12_384px_normal.py', delete_tag_index=[20])


def test_predict_modes_and_empty_selection(ram):
    model = ram.build('ram_swin-large-p4-w12_384px_normal.py')
    model.set_tags(ram.meta['tags_en'], thresholds=[1.0] * 20)
    samples = [DataSample(), DataSample()]
    with torch.no_grad():
        out = model(ram.images, samples, mode='predict')
        logits = model(ram.images, mode='tensor')
    assert out is samples
    assert all(s.pred_label.numel() == 0 and s.pred_tags == [] for s in out)
    assert 'pred_tags_chinese' not in out[0]
    torch.testing.assert_close(
        logits, ram.expected['logits'], atol=ATOL, rtol=0)
    with pytest.raises(NotImplementedError):
        model(ram.images, mode='loss')
    # The base class has no names: indices and scores only.
    base = MODELS.build(
        tiny_cfg('ram_swin-large-p4-w12_384px_normal.py', 20, type='RAM'))
    base.load_state_dict(ram.converted()[0])
    with torch.no_grad():
        sample = base.eval().predict(ram.images[:1])[0]
    assert 'pred_tags' not in sample
    assert sample.pred_label.tolist() == \
        ram.expected['targets'][0].nonzero()[:, 0].tolist()


@pytest.mark.parametrize('config', [
    'ram_swin-large-p4-w12_384px_normal.py',
    'ram_swin-large-p4-w12_384px_openset.py',
    'ram-plus_swin-large-p4-w12_384px_normal.py',
    'ram-plus_swin-large-p4-w12_384px_openset.py'
])
def test_full_size_configs_build(config):
    """Every config builds the full-size model (about 2 s each)."""
    model = MODELS.build(Config.fromfile(osp.join(CONFIGS, config)).model)
    assert model.label_embed.shape[1] == 512
    assert model.image_proj.in_features == 1536
    assert model.tagging_head.embed_dims == 768
    assert model.class_threshold.shape == (4585, )
    if 'plus' in config:
        assert model.label_embed.shape[0] == 4585 * 51


# --------------------------------------------------------------------------
# Full size: timm's Swin-L/384 (random weights) -> Microsoft layout -> our
# converter -> MMPreTrain's SwinTransformer inside RAMNormal.
# --------------------------------------------------------------------------


def reinit_(module: torch.nn.Module, seed: int) -> None:
    """Seeded, non-degenerate random weights (LayerNorms away from 1/0,
    relative position biases that matter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'relative_position_bias_table' in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1 and 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)


def timm_to_microsoft(state_dict: dict) -> dict:
    """timm's Swin keys -> Microsoft's (RAM's ``visual_encoder.``).

    timm puts PatchMerging at the start of stage i + 1, Microsoft at the end
    of stage i; the concatenation order of the 2x2 neighbours is the same.
    timm's index and mask buffers are non-persistent; its head is unused.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith('head.'):
            continue
        stage, sep, rest = key.partition('.downsample.')
        if sep:
            index = int(stage.split('.')[1])
            key = f'layers.{index - 1}.downsample.{rest}'
        out['visual_encoder.' + key] = value
    return out


def random_tagging_state(tsv: str, seed: int) -> dict:
    """Random tensors for RAM's non-Swin tagging keys, from the key TSV."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    with open(tsv) as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    for key, shape, _, _, group, tagging, _ in rows:
        if tagging != 'yes' or key.startswith('visual_encoder.'):
            continue
        shape = [] if shape == 'scalar' else [int(s) for s in shape.split('x')]
        t = torch.randn(shape, generator=g)
        if key == 'label_embed':
            t = t / t.norm(dim=-1, keepdim=True)
        elif 'LayerNorm.weight' in key:
            t = 1 + 0.1 * t
        elif len(shape) == 1:
            t = 0.05 * t
        elif key == 'fc.weight':
            t = 2 * t / shape[1]**0.5
        elif key != 'wordvec_proj.weight':  # gain sqrt(512), like the vectors
            t = t / shape[1]**0.5
        out[key] = t
    return out


def reference_logits(src: dict, tokens: torch.Tensor) -> torch.Tensor:
    """RAM's head on source keys, written out plainly (spec sections 4-6)."""

    def lin(x, name):
        return F.linear(x, src[name + '.weight'], src[name + '.bias'])

    def heads(x):
        return x.view(*x.shape[:2], 4, -1).transpose(1, 2)

    embeds = lin(tokens, 'image_proj')
    h = F.relu(lin(src['label_embed'], 'wordvec_proj'))
    h = h.expand(tokens.size(0), -1, -1)
    for i in range(2):
        p = f'tagging_head.encoder.layer.{i}.'
        q = heads(lin(h, p + 'crossattention.self.query'))
        k = heads(lin(embeds, p + 'crossattention.self.key'))
        v = heads(lin(embeds, p + 'crossattention.self.value'))
        a = torch.softmax(q @ k.transpose(-1, -2) / 192**0.5, dim=-1) @ v
        a = a.transpose(1, 2).reshape(h.shape)
        ln = p + 'crossattention.output.LayerNorm.'
        c = F.layer_norm(
            lin(a, p + 'crossattention.output.dense') + h, (768, ),
            src[ln + 'weight'], src[ln + 'bias'], 1e-12)
        f = lin(F.gelu(lin(c, p + 'intermediate.dense')), p + 'output.dense')
        ln = p + 'output.LayerNorm.'
        h = F.layer_norm(f + c, (768, ), src[ln + 'weight'], src[ln + 'bias'],
                         1e-12)
    return lin(h, 'fc').squeeze(-1)


@pytest.mark.parity
@pytest.mark.slow
def test_swin_large_parity_with_timm(ram_vectors_dir, ram_data_dir):
    timm = pytest.importorskip('timm')
    torch.backends.cuda.matmul.allow_tf32 = False
    image = load(osp.join(ram_vectors_dir, 'inputs.pth'))['images'][:1]
    ref = timm.create_model(
        'swin_large_patch4_window12_384', pretrained=False).eval()
    reinit_(ref, seed=0)
    with torch.no_grad():
        grid = ref.forward_features(image)  # (1, 12, 12, 1536), after norm
    tokens = grid.flatten(1, 2)
    expected = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

    src = timm_to_microsoft(ref.state_dict())
    del ref
    src.update(
        random_tagging_state(
            osp.join(osp.dirname(ram_data_dir), 'ram_swin_l_keys.tsv'), 1))
    with torch.no_grad():
        ref_logits = reference_logits(src, expected)
        # Centre the probabilities on the thresholds, as released RAM is.
        shift = torch.logit(torch.tensor(0.65)) - ref_logits.median()
        src['fc.bias'] = src['fc.bias'] + shift
        ref_logits = reference_logits(src, expected)

    def lines(name):
        with open(osp.join(ram_data_dir, name), encoding='utf-8') as f:
            return f.read().splitlines()

    converted, meta = convert_ram(
        src, lines('ram_tag_list.txt'), lines('ram_tag_list_chinese.txt'),
        [float(t) for t in lines('ram_tag_list_threshold.txt')])
    del src
    model = MODELS.build(
        Config.fromfile(
            osp.join(CONFIGS, 'ram_swin-large-p4-w12_384px_normal.py')).model)
    model.load_state_dict(converted, strict=True)
    model.set_tags_from_meta(meta)
    del converted
    model.eval()
    with torch.no_grad():
        feats = model.extract_image_feat(image)
        logits = model.compute_logits(image)
    torch.testing.assert_close(feats, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    # The default runs the window attention through SDPA; MMPreTrain's own
    # WindowMSA gives the same features.
    from mmpretrain.models.utils.attention import WindowMSA

    from mmprompt.models.utils import SDPAWindowMSA
    switched = [m for m in model.modules() if isinstance(m, SDPAWindowMSA)]
    assert len(switched) == 24
    for m in switched:
        m.__class__ = WindowMSA
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_image_feat(image), expected, atol=1e-4, rtol=0)
    # Same tags, except where the reference's probability is within the
    # tolerance of a threshold (random weights crowd them there).
    thr = model.class_threshold
    ref_probs = ref_logits.sigmoid()
    decided = (ref_probs - thr).abs() > 1e-5
    selected = logits.sigmoid() > thr
    assert torch.equal(selected[decided], (ref_probs > thr)[decided])
    assert int((~decided).sum()) < 10
    assert 0 < int(selected.sum()) < 4585


@pytest.mark.slow
def test_compiled_ram_matches_vectors_and_follows_the_open_set(
        ram, ram_data_dir):
    """compile_model: the reference probabilities, chunked head included,
    the same state dict, and a category switch after compiling is seen."""
    from mmprompt.models.utils import compile_model
    om, ref = ram.openset_meta, ram.openset
    model = ram.build(
        'ram_swin-large-p4-w12_384px_openset.py',
        text_encoder=None,
        templates=osp.join(ram_data_dir, 'openset_templates.json'))
    model.tagging_head.cpu_chunk_rows = 10  # chunks of 5 tags and of 3
    keys = list(model.state_dict())
    assert compile_model(model) is model
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        probs = torch.stack([s.pred_score for s in model.predict(ram.images)])
    torch.testing.assert_close(probs, ram.expected['probs'], atol=ATOL, rtol=0)
    model.set_openset(
        om['categories'], encode_text=RecordedEncoder(ref['text_embeddings']))
    with torch.no_grad():
        samples = model.predict(ram.images)
    probs = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(probs, ref['probs'], atol=ATOL, rtol=0)
    assert joined(samples, 'pred_tags') == om['expected']['tags_en']
    with pytest.raises(RuntimeError, match='already compiled'):
        compile_model(model)
