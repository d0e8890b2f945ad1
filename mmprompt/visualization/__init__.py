# Copyright (c) mmprompt contributors. All rights reserved.
"""Placeholder so the registry ``locations`` import cleanly."""
