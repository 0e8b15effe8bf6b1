from pathlib import Path

import pytest

CATS_DIR = Path(__file__).resolve().parents[2] / "shared" / "cats"


@pytest.fixture
def cats_dir():
    if not CATS_DIR.is_dir():
        pytest.skip("shared/cats reference data not present")
    return CATS_DIR
