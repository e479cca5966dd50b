"""imgconf: contract and conformance tests for OpenAI-compatible image generation endpoints."""

__version__ = "0.1.0"
