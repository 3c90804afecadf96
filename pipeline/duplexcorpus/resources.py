"""Data files the code reads at run time (schemas, labeling configs, annotator instructions).

They live inside the package and are found through `importlib.resources`, so an installed wheel and
a Ray worker on another node (which receives the package as a `py_module`) find them exactly as an
editable checkout does. The top-level `schemas/` and `annotation_ui/` folders of the repository are
links to these same files, for people browsing the project.
"""
from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def package_file(*parts: str) -> Traversable:
    """A file shipped inside the package, e.g. `package_file("schemas", "v1", "words.arrow.json")`."""
    node = files("duplexcorpus")
    for part in parts:
        node = node / part
    return node


def read_text(*parts: str) -> str:
    return package_file(*parts).read_text(encoding="utf-8")
