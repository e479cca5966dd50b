"""Serve one of the hostile targets of ``tests/_hostile.py`` on loopback until interrupted.

For measuring ``imgconf run`` against it by hand, e.g. peak memory and wall time::

    python tools/hostile_serve.py gzip_bomb &
    /usr/bin/time -v imgconf run --base-url http://127.0.0.1:PORT/v1 --timeout 10 ...

Prints the base URL on its first line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _hostile

HANDLERS = (
    "never_answers",
    "resets",
    "random_bytes",
    "endless_body",
    "huge_json",
    "gzip_bomb",
    "stacked_gzip",
    "retry_after_flood",
    "million_items",
    "million_events",
    "million_chunks",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handler", choices=HANDLERS)
    handler = getattr(_hostile, parser.parse_args().handler)
    with _hostile.serve(handler) as base_url:
        print(base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
