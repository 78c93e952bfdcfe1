from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.e2e.harness import Env


@pytest.fixture
def env(tmp_path: Path, backend: Backend) -> Env:
    return Env(tmp_path, backend)
