"""pytest plugin: run imgconf's contract inside a gateway's own test session.

Registered through the ``pytest11`` entry point and inert unless ``--imgconf-base-url`` is given.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("imgconf", "image generation conformance (imgconf)")
    group.addoption(
        "--imgconf-base-url",
        default=None,
        help="Base URL of the endpoint under test (as the OpenAI SDK takes it, ending in /v1).",
    )
