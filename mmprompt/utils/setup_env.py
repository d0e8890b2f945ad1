# Copyright (c) mmprompt contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all modules of MMPreTrain (first: a lookup that walks up to
    a parent does not import its ``locations``) and mmprompt.

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``'mmprompt'``. Defaults to True.
    """
    import mmpretrain.utils
    mmpretrain.utils.register_all_modules(init_default_scope=False)
    from .checkpoint import install_mmengine_loaders
    install_mmengine_loaders()

    # The families tell utils.checkpoint what a refused file is.
    import mmprompt.converters.families  # noqa: F401
    import mmprompt.datasets  # noqa: F401
    import mmprompt.engine  # noqa: F401
    import mmprompt.evaluation  # noqa: F401
    import mmprompt.models  # noqa: F401

    if not init_default_scope:
        return

    current_scope = DefaultScope.get_current_instance()
    if current_scope is None:
        DefaultScope.get_instance('mmprompt', scope_name='mmprompt')
    elif current_scope.scope_name != 'mmprompt':
        warnings.warn(
            f'The current default scope "{current_scope.scope_name}" is not '
            '"mmprompt", `register_all_modules` will force the current '
            'default scope to be "mmprompt". If this is not expected, please '
            'set `init_default_scope=False`.')
        new_instance_name = f'mmprompt-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmprompt')
