#!/usr/bin/env python3
"""Render a report.html to a PNG with headless Chromium, to see the page as a reader would.

    python tools/render_report.py reports/report.html [--out report.png] [--width 1400]

Chromium runs with its network features off (no background fetches, no QUIC, no component
updates) and a throwaway profile; the page itself references nothing outside the file. Exit 2
when Chromium is not installed (``apt-get install chromium``) or the page does not render.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def render(
    html: Path, png: Path, *, width: int = 1400, height: int = 2000, timeout: float = 60
) -> None:
    """Screenshot ``html`` into ``png``; raises RuntimeError when it cannot."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    png = png.resolve()
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="imgconf-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if not png.is_file() or png.stat().st_size == 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(
            f"Chromium wrote no screenshot (exit {done.returncode}): {' | '.join(tail)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG file (default: next to the page)"
    )
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"render_report: error: no such file {args.html}", file=sys.stderr)
        return 2
    out = args.out or args.html.with_suffix(".png")
    try:
        render(args.html, out, width=args.width, height=args.height)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"render_report: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
