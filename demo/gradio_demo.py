# Copyright (c) mmprompt contributors. All rights reserved.
"""Gradio demo: tag anything with RAM, classify anything with CLIP::

    python demo/gradio_demo.py --clip-checkpoint checkpoints/clip.pth \
        --ram-checkpoint checkpoints/ram.pth

A missing checkpoint disables its tab, which tells how to get it. This file
draws the page; :mod:`demo_backend` does the rest."""
import argparse
import functools
import logging
import traceback
from typing import Any, Callable, List, Optional, Sequence

import gradio as gr
from mmengine.logging import print_log

from demo_backend import (RAM_CONFIG, RAM_OPENSET_CONFIG, DemoInputError,
                          MemoryBudget, MMPromptBackend, run_classify,
                          run_tagging, split_names)

NUM_EXAMPLE_SLOTS = 3  # the classify handler names each slot's inputs
#: Requests per model run side by side (each calling thread gets PyTorch's
#: OpenMP team: a few, not one per queued request); more wait in the queue.
ACTIVE_REQUESTS = 4
#: MB the running requests may take to decode their images together (two
#: images at the decoder's own limit).
MEMORY_BUDGET_MB = 2000
DEFAULT_CLIP_CONFIG = 'clip_vit-base-p16'

INTRO = """\
# mmprompt demo
Frozen models, no training: **Tagging** lists everything
[RAM](https://arxiv.org/abs/2306.03514) recognises (4585 tags, English and
Chinese) or checks the categories you type; **Classify** picks among *your*
categories with [CLIP](https://arxiv.org/abs/2103.00020), sharpened by
optional descriptions and a few example images.
"""


def _image_input(elem_id: str) -> gr.Image:
    """An upload whose handler gets the file untouched: ``gr.Image`` would
    open it with PIL first, and fail with server paths in the message."""
    image = gr.Image(type='filepath', image_mode=None, label='Image',
                     sources=['upload', 'clipboard'], elem_id=elem_id)
    default = image.preprocess

    def preprocess(payload: Any) -> Optional[str]:
        url = getattr(payload, 'url', None) or ''
        if getattr(payload, 'path', None) and not url.startswith('data:'):
            return str(payload.path)
        return default(payload)  # None, or a data: URL

    image.preprocess = preprocess
    return image


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input and failures as a message on the page, not a trace."""

    @functools.wraps(fn)
    def wrapped(*args: Any) -> Any:
        try:
            return fn(*args)
        except (RuntimeError, ValueError) as e:  # bad input, or refused
            if not isinstance(e, DemoInputError):
                print_log(f'Request failed: {type(e).__name__}: {e}',
                          'current', logging.WARNING)
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:
            print_log('Request failed:\n' + traceback.format_exc(),
                      'current', logging.ERROR)
            raise gr.Error(
                f'internal error ({type(e).__name__}); the details are in '
                'the server log', print_exception=False) from None

    return wrapped


def _category_choices(text: Optional[str]) -> List[str]:
    """The categories box's names, leniently (no errors while typing)."""
    return list(dict.fromkeys(split_names(text)))


def _tagging_tab(backend: MMPromptBackend, budget: MemoryBudget) -> None:
    unavailable = backend.ram_unavailable()
    if unavailable:
        gr.Markdown(unavailable, elem_id='tag-unavailable')
        return
    with gr.Row():
        with gr.Column():
            image = _image_input('tag-image')
            no_open_set = backend.open_set_unavailable()
            open_set = gr.Textbox(
                lines=2, label='Open set (optional)', info=no_open_set,
                placeholder='Tag against these categories instead of RAM\'s '
                '4585 tags: comma or newline separated, e.g. "corgi, frisbee'
                ', beach"', interactive=no_open_set is None,
                elem_id='tag-open-set')
            calibrated = gr.Checkbox(
                value=True, elem_id='tag-calibrated',
                label='Use RAM\'s calibrated per-tag thresholds (for its own '
                'tags; the open set always uses the slider)')
            threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01,
                                  label='Threshold', elem_id='tag-threshold')
            button = gr.Button('Tag', variant='primary', elem_id='tag-button')
        with gr.Column():
            bars = gr.Label(label='Tags', show_heading=False,
                            elem_id='tag-label')
            english = gr.Textbox(label='English', buttons=['copy'],
                                 elem_id='tag-english')
            chinese = gr.Textbox(label='中文', buttons=['copy'],
                                 elem_id='tag-chinese')
            table = gr.Dataframe(
                headers=['Tag', '中文', 'Score'], interactive=False,
                datatype=['str', 'str', 'number'], label='Scores',
                elem_id='tag-table')

    def tag(image, threshold, calibrated, open_set):
        bars_, table_, english_, chinese_ = run_tagging(
            backend, image, threshold, calibrated, open_set, budget)
        return bars_, english_, chinese_, table_

    button.click(_guard(tag), inputs=[image, threshold, calibrated, open_set],
                 outputs=[bars, english, chinese, table], api_name='tag',
                 concurrency_id='ram', concurrency_limit=ACTIVE_REQUESTS)


def _classify_tab(backend: MMPromptBackend, budget: MemoryBudget) -> None:
    unavailable = backend.clip_unavailable()
    if unavailable:
        gr.Markdown(unavailable, elem_id='cls-unavailable')
        return
    learned = backend.learned_prompts()
    if learned:  # its prompts replace descriptions, examples, templates
        gr.Markdown(learned, elem_id='cls-learned')
    with gr.Row():
        with gr.Column():
            image = _image_input('cls-image')
            categories = gr.Textbox(
                value=', '.join(backend.learned_categories()), lines=3,
                label='Categories', elem_id='cls-categories',
                placeholder='Comma or newline separated, e.g. "tabby cat, '
                'golden retriever, red fox"')
            with gr.Accordion('Descriptions (optional)', open=False,
                              visible=not learned):
                descriptions = gr.Textbox(
                    lines=3, show_label=False, elem_id='cls-descriptions',
                    placeholder='One per line, "category: description", '
                    'e.g.\nred fox: a small wild dog with a bushy red tail')
            slots: List[Any] = []
            with gr.Accordion('Example images (optional)', open=False,
                              visible=not learned):
                for i in range(NUM_EXAMPLE_SLOTS):
                    with gr.Row():
                        slots.append(gr.Dropdown(
                            choices=[], value=None, allow_custom_value=True,
                            label=f'Category {i + 1}', scale=1,
                            elem_id=f'cls-example-name-{i}'))
                        slots.append(gr.File(
                            file_count='multiple', file_types=['image'],
                            label='Its example images', scale=2,
                            elem_id=f'cls-example-files-{i}'))
            with gr.Row():
                choices = backend.template_sets()
                templates = gr.Dropdown(
                    choices=choices, value=choices[0], visible=not learned,
                    label='Prompt templates', elem_id='cls-templates')
                topk = gr.Slider(1, 20, value=5, step=1, label='Top-k',
                                 elem_id='cls-topk')
            button = gr.Button('Classify', variant='primary',
                               elem_id='cls-button')
        with gr.Column():
            label = gr.Label(label='Top-k categories', elem_id='cls-label')

    def update_choices(text):
        names = _category_choices(text)
        return [gr.Dropdown(choices=names) for _ in range(NUM_EXAMPLE_SLOTS)]

    categories.blur(update_choices, inputs=categories, outputs=slots[0::2],
                    queue=False, api_visibility='private')

    def classify(image, categories, descriptions, templates, topk,
                 example_category_1, example_images_1, example_category_2,
                 example_images_2, example_category_3, example_images_3):
        pairs = [(example_category_1, example_images_1),
                 (example_category_2, example_images_2),
                 (example_category_3, example_images_3)]
        return run_classify(backend, image, categories, descriptions, pairs,
                            templates, topk, budget)

    button.click(
        _guard(classify),
        inputs=[image, categories, descriptions, templates, topk] + slots,
        outputs=label, api_name='classify', concurrency_id='clip',
        concurrency_limit=ACTIVE_REQUESTS)


def build_demo(backend: MMPromptBackend, queue_size: int = 64,
               memory_budget_mb: float = MEMORY_BUDGET_MB) -> gr.Blocks:
    """The page, queued (``queue_size`` waiting at most), not launched."""
    budget = MemoryBudget(int(memory_budget_mb * 1e6))
    with gr.Blocks(title='mmprompt demo', analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            off = ' (unavailable)' if backend.ram_unavailable() else ''
            with gr.Tab('Tagging' + off, id='tagging', elem_id='tab-tagging'):
                _tagging_tab(backend, budget)
            off = ' (unavailable)' if backend.clip_unavailable() else ''
            with gr.Tab('Classify' + off, id='classify',
                        elem_id='tab-classify'):
                _classify_tab(backend, budget)
        gr.Markdown('Images are decoded as the library decodes them (EXIF '
                    'orientation, 16-bit scaling, at most 89.5 megapixels '
                    'and 1,000 MB to decode): the page answers as the API '
                    'does.')
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='mmprompt Gradio demo: RAM tagging and CLIP zero-shot '
        'classification')
    add = parser.add_argument
    add('--clip-checkpoint', help='converted checkpoint of --clip-config '
        '(tools/model_converters/*_to_mmprompt.py); else no Classify')
    add('--clip-config', default=DEFAULT_CLIP_CONFIG,
        help='zero-shot model name (CLIP, open_clip, PE-Core, SigLIP: '
        'tools/misc/download_weights.py --list) or config file (default: '
        '%(default)s)')
    add('--learned', help='a learned-prompt file of tools/train.py (CoOp, '
        'CoCoOp) of this CLIP: Classify uses its prompts')
    add('--allow-other-clip-weights', action='store_true',
        help='use --learned over other CLIP weights than it was learned on')
    add('--ram-checkpoint', help='converted RAM checkpoint (tools/'
        'model_converters/ram_to_mmprompt.py); else no Tagging')
    add('--ram-config', help='tagging model name or config file, SigLIP '
        f'too (default: {RAM_OPENSET_CONFIG} with a text checkpoint, else '
        f'{RAM_CONFIG})')
    add('--ram-text-checkpoint', help='converted CLIP ViT-B/16 for RAM\'s '
        'open set (default: --clip-checkpoint when --clip-config is '
        f'{DEFAULT_CLIP_CONFIG}); else no open set')
    add('--device', help='torch device, e.g. cpu or cuda:0')
    add('--server-name', default='127.0.0.1', help='address to listen on; '
        '0.0.0.0 exposes the demo to the network (default: %(default)s)')
    add('--port', type=int, default=7860)
    add('--queue-size', type=int, default=64,
        help='requests waiting at most (default: %(default)s)')
    add('--memory-budget-mb', type=float, default=MEMORY_BUDGET_MB,
        help='MB that running requests may take to decode their images '
        'together; more wait, then are refused (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.memory_budget_mb > 0:
        parser.error(f'--memory-budget-mb must be > 0, got '
                     f'{args.memory_budget_mb:g}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    text_checkpoint = args.ram_text_checkpoint
    if text_checkpoint is None and args.clip_config == DEFAULT_CLIP_CONFIG:
        text_checkpoint = args.clip_checkpoint  # RAM's open set uses B/16
    backend = MMPromptBackend(
        args.clip_config, args.clip_checkpoint, args.ram_config,
        args.ram_checkpoint, text_checkpoint, args.device, args.learned,
        allow_other_weights=args.allow_other_clip_weights)
    for what, why in (('Classify', backend.clip_unavailable()),
                      ('Tagging', backend.ram_unavailable()),
                      ('Open-set tagging', backend.open_set_unavailable())):
        if why:
            print_log(f'{what} is disabled: see the page for how to enable '
                      'it.', 'current', logging.WARNING)
    # Local fonts: the page needs no internet.
    theme = gr.themes.Default(
        font=['ui-sans-serif', 'system-ui', 'sans-serif'],
        font_mono=['ui-monospace', 'Consolas', 'monospace'])
    build_demo(backend, args.queue_size, args.memory_budget_mb).launch(
        server_name=args.server_name, server_port=args.port, show_error=True,
        share=False, ssr_mode=False, mcp_server=False, footer_links=['api'],
        theme=theme)


if __name__ == '__main__':
    from mmprompt.utils.errors import run_tool
    run_tool(main)  # a bad --learned file is one line
