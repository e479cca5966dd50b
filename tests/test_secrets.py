"""The key never leaves the target's origin and never appears in anything imgconf writes."""

from __future__ import annotations

import asyncio
import json
import random
import string
import subprocess
import sys
from pathlib import Path

from _hostile import b64_at, disguised_answers, echo_disguised, echo_key, key_disguises, serve

from conformance.server.launcher import start_reference_server

KEY = "sk-imgconf-known-secret-7f3a9c1e5b2d4680"


def imgconf(*args: str, env_key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if env_key:
        env["OPENAI_API_KEY"] = env_key
    return subprocess.run(
        [sys.executable, "-c", "from conformance.cli import run; run()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_nowhere(directory: Path, result: subprocess.CompletedProcess[str]) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.stdout and KEY not in result.stderr


def test_a_known_key_appears_in_no_output(tmp_path):
    with start_reference_server(api_key=KEY) as server:
        result = imgconf(
            "run",
            "--base-url",
            server.base_url,
            "--models",
            "dall-e-2,gpt-image-1",
            "--report-dir",
            str(tmp_path / "reports"),
            "--record",
            str(tmp_path / "run.har"),
            env_key=KEY,  # taken from the environment, as in CI
        )
    assert result.returncode == 0, result.stderr
    har = json.loads((tmp_path / "run.har").read_text())
    assert har["log"]["entries"], "the recording holds the exchanges"
    assert_nowhere(tmp_path, result)


def test_a_server_echoing_the_key_does_not_leak_it(tmp_path):
    seen: list[bytes] = []
    with serve(echo_key(seen)) as base_url:
        result = imgconf(
            "run",
            "--base-url",
            base_url,
            "--api-key",
            KEY,
            "--models",
            "dall-e-2",
            "--report-dir",
            str(tmp_path / "reports"),
            "--record",
            str(tmp_path / "run.har"),
        )
    assert result.returncode == 1
    assert any(KEY.encode() in request for request in seen), "the key was sent to the target"
    assert_nowhere(tmp_path, result)


def test_image_urls_and_other_origins_never_get_the_key(tmp_path):
    image_requests: list[bytes] = []

    async def image_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        image_requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()

    with serve(image_server) as image_base:
        answer = json.dumps({"created": 1, "data": [{"url": image_base + "/a.png"}]}).encode()
        redirect = image_base + "/steal"

        async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ]
            body = await reader.readexactly(length[0] if length else 0)
            if b'"n": 2' in body:
                writer.write(
                    b"HTTP/1.1 307 Temporary Redirect\r\nlocation: "
                    + redirect.encode()
                    + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    + b"content-length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )
            await writer.drain()

        with serve(target) as base_url:
            result = imgconf(
                "run",
                "--base-url",
                base_url,
                "--api-key",
                KEY,
                "--models",
                "dall-e-2",
                "--report-dir",
                str(tmp_path / "reports"),
            )
    assert result.returncode == 1
    assert image_requests, "the image URLs were fetched"
    assert not any(b"/steal" in r for r in image_requests), "a cross-origin redirect was followed"
    assert all(b"authorization" not in r.lower() for r in image_requests)
    assert all(KEY.encode() not in r for r in image_requests)
    assert_nowhere(tmp_path, result)


# --- a key of no known shape, echoed in every disguise -------------------------------------

#: A key that looks like no vendor's: no prefix a pattern could know, mixed case.
_rng = random.Random(11)
ODD_KEY = "Zq9-" + "".join(
    _rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(36)
)


def _b64_at(shift: int, seed: int) -> str:
    return b64_at(ODD_KEY, shift, seed)


def disguises_found(data: bytes, key: str = ODD_KEY) -> set[str]:
    return key_disguises(data, key)


def _odd_answers() -> tuple[bytes, bytes]:
    return disguised_answers(ODD_KEY)


def odd_echo(seen: list[bytes]):
    return echo_disguised(ODD_KEY, seen)


def test_the_odd_answers_hide_the_key_every_way_the_oracle_reads():
    """The oracle below can fail: it finds each disguise the hostile server uses."""
    error, accepted = _odd_answers()
    assert ODD_KEY.encode() not in error + accepted
    assert disguises_found(error) == {"json-escaped", "base64"}
    assert disguises_found(accepted) == {"json-escaped", "base64"}
    for shift in range(3):
        assert disguises_found(_b64_at(shift, 20).encode()) == {"base64"}
    assert "verbatim" in disguises_found(f"x-key-{ODD_KEY.lower()}".encode())


def test_a_key_of_no_known_shape_in_every_disguise_reaches_no_output(tmp_path):
    seen: list[bytes] = []
    with serve(odd_echo(seen)) as base_url:
        result = imgconf(
            "run",
            "--base-url",
            base_url,
            "--api-key",
            ODD_KEY,
            "--models",
            "dall-e-2",
            "--concurrency",
            "1",
            "--report-dir",
            str(tmp_path / "reports"),
            "--record",
            str(tmp_path / "run.har"),
        )
    assert result.returncode == 1, result.stderr
    assert len(seen) > 4 and "Traceback" not in result.stderr
    outputs = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(outputs) >= {"report.json", "junit.xml", "report.md", "report.html", "run.har"}
    outputs["stdout"] = result.stdout.encode()
    outputs["stderr"] = result.stderr.encode()
    leaked = {name: disguises_found(data) for name, data in outputs.items()}
    assert not any(leaked.values()), leaked
    # Redacted, not merely absent: the header name and the message are there, the key is not.
    report = outputs["report.json"].decode()
    assert "x-key-[REDACTED]" in report and "invalid api key [REDACTED]" in report
