# -*- test-case-name: tests.test_demo -*-
"""
Objects for the API server from YAML manifests, as C{kubectl get -o yaml} writes them: one
object per document, or a C{kind: List} of them, or several documents separated by C{---}.
"""

from __future__ import annotations

import yaml

from kubernetai.apiserver.resources import RESOURCES


class ManifestError(ValueError):
    """A manifest the API server cannot load; the message names the file and the object."""


def load_manifests(path: str) -> list[dict]:
    """The objects in the YAML file at C{path}, Lists flattened, in file order."""
    with open(path, encoding="utf-8") as manifest:
        text = manifest.read()
    try:
        documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not YAML: {err}") from None
    objects = []
    for document in documents:
        items = document.get("items", []) if _is_list(document) else [document]
        objects += [_checked(path, item) for item in items]
    return objects


def _is_list(document) -> bool:
    return isinstance(document, dict) and document.get("kind", "").endswith("List")


_KINDS = {resource.kind for resource in RESOURCES.values()}


def _checked(path: str, item) -> dict:
    """C{item} if it is an object of a kind the server keeps, with a name."""
    if not isinstance(item, dict):
        raise ManifestError(f"{path}: expected an object, got {item!r}")
    kind = item.get("kind")
    name = (item.get("metadata") or {}).get("name")
    if kind not in _KINDS:
        raise ManifestError(f"{path}: {kind or 'an object without kind'} {name or ''}: "
                            f"kind not served here; expected one of {', '.join(sorted(_KINDS))}")
    if not name:
        raise ManifestError(f"{path}: a {kind} without metadata.name")
    return item
