# Copyright (c) mmprompt contributors. All rights reserved.
from .clip import *  # noqa: F401,F403
from .pe_core import *  # noqa: F401,F403
from .prompt_learning import *  # noqa: F401,F403
from .ram import *  # noqa: F401,F403
from .siglip import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
