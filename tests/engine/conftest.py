import os

import pytest


@pytest.fixture(scope="session")
def ray_module():
    """Ray, which the [test] extra installs; CI fails without it, elsewhere the test skips, saying why."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray missing in CI: it is in the [test] extra")
        pytest.skip('ray is not installed here: pip install -e ".[ray]"')
    return ray
