"""A pytest plugin that makes ``import t3f`` (and ``from t3f import ops``,
``import t3f.ops``) load `t3f_ext`, so T3F 1.2.0's own test files run
against it unedited. Load it with ``python -m pytest -p t3f_alias``."""

import importlib
import pkgutil
import sys

import t3f_ext

sys.modules["t3f"] = t3f_ext
for _info in pkgutil.iter_modules(t3f_ext.__path__):
    sys.modules["t3f." + _info.name] = importlib.import_module("t3f_ext." + _info.name)
