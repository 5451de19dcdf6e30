"""A package's names loaded from their modules on first use (PEP 562): importing the package costs
nothing until one of them is used, so a command pays only for what it runs."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def loader(package: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """The module `__getattr__` of *package*; *homes* names the submodule that defines each name."""

    def load(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    return load
