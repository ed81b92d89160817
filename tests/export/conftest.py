"""One tiny bundle per test session for the export tests (tests that damage it work on a copy)."""

from __future__ import annotations

import pytest
import torch

from export.bundle import Bundle
from tests.export.tiny import tiny_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("bundles"))
