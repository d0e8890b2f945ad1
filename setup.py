# Copyright (c) mmprompt contributors. All rights reserved.
import os.path as osp

from setuptools import find_packages, setup


def readme() -> str:
    with open(osp.join(osp.dirname(__file__), 'README.md'),
              encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    namespace = {}
    with open(osp.join(osp.dirname(__file__), 'mmprompt', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(fname: str) -> list:
    with open(osp.join(osp.dirname(__file__), fname)) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line and not line.startswith('-')]


setup(
    name='mmprompt',
    version=get_version(),
    description='Prompt-based image recognition (CLIP, RAM) on MMPreTrain',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
    package_data={'mmprompt': ['models/clip/*.gz', 'models/clip/*.txt']},
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'demo': parse_requirements('requirements/demo.txt'),
    },
    zip_safe=False)
