"""File helpers every stage shares: content hashes for manifests, atomic writes so nothing is half-written."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (bundles and datasets hold multi-MB files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temp file beside the target and rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_and_markdown(prefix: Path, data: dict[str, Any], markdown: str) -> None:
    """A benchmark's PREFIX.json (its figures) and PREFIX.md (its table), each written atomically."""
    prefix = Path(prefix)
    write_text_atomic(prefix.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    write_text_atomic(prefix.with_suffix(".md"), markdown)
