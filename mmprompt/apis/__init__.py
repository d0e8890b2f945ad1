# Copyright (c) mmprompt contributors. All rights reserved.
__all__ = []
