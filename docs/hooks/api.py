"""MkDocs hook: expands ``<!-- api: package -->`` into one mkdocstrings block per public name.

A package's public names are the attributes of its namespace that do not start with ``_`` and are
defined in this project (tfbayes or t3f_ext). Each is rendered from the module that defines it, so
a name added to a package's ``__init__`` appears in the reference without editing the page.
A public submodule is rendered whole when none of the package's names come from it (e.g.
``tfbayes.layers.kl``).
"""

import importlib
import inspect
import re

_DIRECTIVE = re.compile(r"<!-- api: ([\w.]+) -->")
_PROJECT = ("tfbayes", "t3f_ext")


def public_objects(package_name):
    """``[(path, kind)]``: the dotted path of each public name's definition, in namespace order."""
    package = importlib.import_module(package_name)
    objects, modules = [], []
    for name, value in vars(package).items():
        if name.startswith("_"):
            continue
        if inspect.ismodule(value):
            if value.__name__.startswith(package_name + "."):
                modules.append(value.__name__)
            continue
        module = getattr(value, "__module__", None) or ""
        if module.split(".")[0] not in _PROJECT or not hasattr(value, "__qualname__"):
            continue
        objects.append(f"{module}.{value.__qualname__}")
    covered = {path.rsplit(".", 1)[0] for path in objects}
    return list(dict.fromkeys(objects)) + [m for m in modules if m not in covered]


def on_page_markdown(markdown, page, config, files):
    def expand(match):
        return "\n\n".join(
            f"::: {path}\n    options:\n      heading_level: 2"
            for path in public_objects(match.group(1))
        )

    return _DIRECTIVE.sub(expand, markdown)
