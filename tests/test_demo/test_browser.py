# Copyright (c) mmprompt contributors. All rights reserved.
"""End to end: the real demo, real tiny models, a real headless Chromium.

The demo runs in a subprocess on a free loopback port with random-weight
CLIP and RAM checkpoints made by the real converters
(:mod:`testing_utils.demo_models`). Selenium drives Debian's ``chromium`` through
``chromedriver``: it uploads an image, submits, and reads the tags and the
top-k back from the page. The tiny RAM's tags for the shared test image
are known from the reference implementation, so the page must show exactly
those. Screenshots go to ``$MMPROMPT_ARTIFACTS`` (default
``tests/artifacts``); with ``MMPROMPT_UPDATE_DOCS=1`` the tagging one is
also copied to ``docs/demo.png`` for the README.

Skipped, with the reason, when selenium, chromium or chromedriver is
missing (``.ci/run`` installs them) or the browser cannot start.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from testing_utils import demo_models as tiny

pytestmark = pytest.mark.browser

REPO = tiny.REPO
ARTIFACTS = os.environ.get('MMPROMPT_ARTIFACTS',
                           osp.join(REPO, 'tests', 'artifacts'))
IMAGE = osp.join(tiny.RAM_VECTORS, 'images', 'img0_rgb_320x240.png')
CHROMIUM_FLAGS = [
    '--headless=new', '--no-sandbox', '--disable-gpu',
    '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update',
    '--disable-sync', '--window-size=1400,1100', '--lang=en-US'
]
CATEGORIES = ['tabby cat', 'golden retriever', 'red fox', 'pickup truck']
SERVER_START_S = 120
RESULT_S = 60


def _which(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope='module')
def driver(tmp_path_factory):
    pytest.importorskip(
        'selenium', reason='selenium is not installed (pip install selenium)')
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    browser = _which('chromium', 'chromium-browser', 'google-chrome')
    chromedriver = _which('chromedriver')
    if not browser or not chromedriver:
        pytest.skip('headless browser test: chromium or chromedriver not '
                    'found (apt-get install chromium chromium-driver)')
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp('chromium-profile')
    options.add_argument(f'--user-data-dir={profile}')
    try:
        drv = webdriver.Chrome(
            options=options, service=Service(executable_path=chromedriver))
    except WebDriverException as e:
        pytest.skip(f'headless chromium could not start: {e.msg}')
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_http(url, proc, log_path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    with open(log_path, errors='replace') as f:
        log = f.read()[-3000:]
    pytest.fail(f'the demo did not come up at {url} (exit code '
                f'{proc.poll()}); its log ends:\n{log}')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    import mmprompt.apis as apis
    missing = [
        name for name in ('ZeroShotClassifier', 'ImageTagger')
        if not hasattr(apis, name)
    ]
    if missing:
        pytest.skip(f'mmprompt.apis has no {" / ".join(missing)} yet: the '
                    'demo has no model to drive')
    if not osp.isfile(IMAGE):
        pytest.skip(f'shared test vectors not found ({IMAGE})')
    work = str(tmp_path_factory.mktemp('demo_models'))
    clip = tiny.make_tiny_clip(work)
    ram = tiny.make_tiny_ram(work, clip['checkpoint'])
    port = _free_port()
    log_path = osp.join(work, 'demo.log')
    env = dict(os.environ, OMP_NUM_THREADS='1', GRADIO_ANALYTICS_ENABLED='0')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([
            sys.executable,
            osp.join(REPO, 'demo', 'gradio_demo.py'), '--clip-config',
            clip['config'], '--clip-checkpoint', clip['checkpoint'],
            '--ram-config', ram['config'], '--ram-checkpoint',
            ram['checkpoint'], '--ram-text-checkpoint', clip['checkpoint'],
            '--server-name', '127.0.0.1', '--port',
            str(port), '--queue-size', '8'
        ],
                                cwd=work,
                                env=env,
                                stdout=log,
                                stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        _wait_http(url, proc, log_path, SERVER_START_S)
        yield dict(url=url, log=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _screenshot(drv, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = osp.join(ARTIFACTS, name)
    # The whole page, not just the viewport (Chromium's DevTools protocol).
    size = drv.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
    drv.execute_cdp_cmd(
        'Emulation.setDeviceMetricsOverride',
        dict(
            width=int(size['width']),
            height=min(int(size['height']), 3000),
            deviceScaleFactor=1,
            mobile=False))
    try:
        assert drv.save_screenshot(path), path
    finally:
        drv.execute_cdp_cmd('Emulation.clearDeviceMetricsOverride', {})
    return path


def _wait(drv, condition, what, timeout=RESULT_S):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(
            drv, timeout, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        from selenium.webdriver.common.by import By
        shot = _screenshot(drv, 'failure.png')
        page = drv.find_element(By.TAG_NAME, 'body').text
        raise AssertionError(f'timed out waiting for {what}; screenshot '
                             f'{shot}; the page says:\n{page[-1500:]}')


def _open(drv, url, tab=None):
    """Load the page, pick ``tab``, and wait until its controls exist.

    Gradio draws the tab bar before the tab's contents, so waiting for the
    tabs alone races the first ``find_element`` (seen in CI).
    """
    from selenium.webdriver.common.by import By
    drv.get(url)
    _wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, 'button[role=tab]'),
          'the page to render')
    if tab:
        buttons = [
            b for b in drv.find_elements(By.CSS_SELECTOR, 'button[role=tab]')
            if b.text.strip() == tab
        ]
        assert buttons, f'no tab {tab!r}'
        buttons[0].click()
    button = 'cls-button' if tab == 'Classify' else 'tag-button'
    _wait(drv, lambda d: any(b.is_displayed()
                             for b in d.find_elements(By.ID, button)),
          f'the {tab or "Tagging"} tab\'s controls')


def _upload(drv, elem_id, path):
    from selenium.webdriver.common.by import By
    drv.find_element(By.CSS_SELECTOR,
                     f'#{elem_id} input[type=file]').send_keys(path)
    # The preview appears once the file is on the server.
    _wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, f'#{elem_id} img'),
          'the upload')


def _value(drv, css):
    from selenium.webdriver.common.by import By
    found = drv.find_elements(By.CSS_SELECTOR, css)
    return found[0].get_attribute('value') if found else ''


def _bars(drv, elem_id):
    """(label, percent) of each bar of a gr.Label, top to bottom."""
    from selenium.webdriver.common.by import By
    rows = []
    for bar in drv.find_elements(By.CSS_SELECTOR,
                                 f'#{elem_id} .confidence-set'):
        name = bar.find_element(By.CSS_SELECTOR, 'dt').text.strip()
        conf = bar.find_element(By.CSS_SELECTOR, 'dd').text.strip()
        rows.append((name, float(conf.rstrip('%'))))
    return rows


def _error_text(drv, needle):
    """Wait for an error toast containing ``needle``; return its text."""
    from selenium.webdriver.common.by import By

    def find(d):
        body = d.find_element(By.TAG_NAME, 'body').text
        return body if needle in body else None

    return _wait(drv, find, f'an error saying {needle!r}', timeout=30)


def test_tagging_in_browser(driver, server):
    from selenium.webdriver.common.by import By
    expected = tiny.ram_tiny_expected()['expected']
    tags_en = expected['tags_en'][0].split(' | ')
    tags_zh = [t.strip() for t in expected['tags_zh'][0].split(' | ')]

    _open(driver, server['url'])
    _upload(driver, 'tag-image', IMAGE)
    driver.find_element(By.ID, 'tag-button').click()
    english = _wait(driver, lambda d: _value(d, '#tag-english textarea'),
                    'the tags')
    # Exactly the reference's tags (the page sorts them by score).
    assert sorted(english.split(' | ')) == sorted(tags_en)
    chinese = _value(driver, '#tag-chinese textarea').split(' | ')
    assert sorted(chinese) == sorted(tags_zh)
    bars = _bars(driver, 'tag-label')
    assert len(bars) == len(tags_en)
    assert [p for _, p in bars] == sorted((p for _, p in bars), reverse=True)
    assert all(0 < p <= 100 for _, p in bars)
    assert bars[0][0].split(' / ')[0] == english.split(' | ')[0]
    table = driver.find_element(By.ID, 'tag-table').text
    assert all(t in table for t in tags_en)
    shot = _screenshot(driver, 'demo_tagging.png')
    if os.environ.get('MMPROMPT_UPDATE_DOCS') == '1':
        shutil.copyfile(shot, osp.join(REPO, 'docs', 'demo.png'))

    # The open set: only the typed categories can come back.
    driver.find_element(By.CSS_SELECTOR, '#tag-open-set textarea') \
        .send_keys('cat, red car\ndog')
    driver.find_element(By.ID, 'tag-button').click()
    _wait(driver, lambda d: _value(d, '#tag-english textarea') != english,
          'the open-set tags')
    got = _value(driver, '#tag-english textarea').split(' | ')
    assert got and set(got) <= {'cat', 'red car', 'dog'}
    assert {name for name, _ in _bars(driver, 'tag-label')} == set(got)


def test_classify_in_browser(driver, server):
    from selenium.webdriver.common.by import By
    _open(driver, server['url'], tab='Classify')
    _upload(driver, 'cls-image', IMAGE)
    box = driver.find_element(By.CSS_SELECTOR, '#cls-categories textarea')
    box.send_keys(', '.join(CATEGORIES[:2]) + '\n' + ', '.join(CATEGORIES[2:]))
    driver.find_element(By.ID, 'cls-button').click()
    _wait(driver, lambda d: len(_bars(d, 'cls-label')) == len(CATEGORIES),
          'the top-k')
    bars = _bars(driver, 'cls-label')
    assert sorted(name for name, _ in bars) == sorted(CATEGORIES)
    percents = [p for _, p in bars]
    assert percents == sorted(percents, reverse=True)
    assert abs(sum(percents) - 100) <= len(percents)  # rounded softmax
    _screenshot(driver, 'demo_classify.png')


def test_errors_in_browser(driver, server):
    from selenium.webdriver.common.by import By
    _open(driver, server['url'])
    driver.find_element(By.ID, 'tag-button').click()
    _error_text(driver, 'no image: upload an image first')

    _open(driver, server['url'], tab='Classify')
    _upload(driver, 'cls-image', IMAGE)
    driver.find_element(By.CSS_SELECTOR, '#cls-categories textarea') \
        .send_keys('cat, dog, Cat')
    driver.find_element(By.ID, 'cls-button').click()
    _error_text(driver, "duplicate category names: 'cat' (#0) and 'Cat' (#2)")
    _screenshot(driver, 'demo_error.png')
    # The server kept serving and logged no traceback for bad input.
    with urllib.request.urlopen(server['url'], timeout=5) as r:
        assert r.status == 200
    with open(server['log'], errors='replace') as f:
        assert 'Traceback' not in f.read()
