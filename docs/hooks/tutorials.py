"""MkDocs hook: publishes the notebooks in tutorials/ with the site, so that the guides' links to
them (written relative to the repository, ``../tutorials/name.ipynb``) resolve and are checked."""

import pathlib
import re

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[2]
_REPO_LINK = re.compile(r"\]\(\.\./tutorials/")


def on_files(files, config):
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        files.append(
            File(
                f"tutorials/{notebook.name}",
                str(ROOT),
                config["site_dir"],
                config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    # A guide at docs/x.md links to ../tutorials/n.ipynb; in the site the notebook sits beside it.
    depth = page.file.src_uri.count("/")
    return _REPO_LINK.sub("](" + "../" * depth + "tutorials/", markdown)
