# Copyright (c) mmprompt contributors. All rights reserved.
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def readme() -> str:
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    namespace = {}
    with open(osp.join(ROOT, 'mmprompt', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(fname: str) -> list:
    with open(osp.join(ROOT, fname)) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line and not line.startswith('-')]


def add_mim_extension() -> None:
    """Ship ``configs/``, ``tools/`` and the zoo's ``model-index.yml``
    inside the package, as OpenMMLab does.

    A wheel (``pip install .``, ``bdist_wheel``) gets copies under
    ``mmprompt/.mim``, where :mod:`mmprompt.apis.model_zoo` and ``mim`` find
    them; an editable install reads them from the checkout.
    """
    if not {'bdist_wheel', 'install', 'build', 'sdist'} & set(sys.argv[1:]):
        return
    mim = osp.join(ROOT, 'mmprompt', '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in ('configs', 'tools'):
        dst = osp.join(mim, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(
            osp.join(ROOT, name),
            dst,
            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    shutil.copy(osp.join(ROOT, 'model-index.yml'), mim)


add_mim_extension()
setup(
    name='mmprompt',
    version=get_version(),
    description='Prompt-based image recognition (CLIP, RAM) on MMPreTrain',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
    package_data={
        'mmprompt': [
            'models/clip/*.gz', 'models/clip/*.txt', '.mim/**/*.py',
            '.mim/**/*.yml', '.mim/*.yml', '.mim/configs/*/README.md',
            '.mim/tools/*.sh'
        ]
    },
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'demo': parse_requirements('requirements/demo.txt'),
        'deploy': parse_requirements('requirements/deploy.txt'),
    },
    zip_safe=False)
