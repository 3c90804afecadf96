"""The finished run the export tests read: the session's real run on the bundled samples, or, to
iterate quickly, an existing finished run named by DUPLEXCORPUS_TEST_RUN (only read, never written)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def finished_run(request) -> Path:
    given = os.environ.get("DUPLEXCORPUS_TEST_RUN")
    if given:
        return Path(given)
    return request.getfixturevalue("sample_run").out


def pytest_collection_modifyitems(config, items):
    # finished_run asks for sample_run only at run time, so the root conftest cannot see it: a test
    # that reads a whole run is slow (kept out of `make test-fast`)
    for item in items:
        if "finished_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
