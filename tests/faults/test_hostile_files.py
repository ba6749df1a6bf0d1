"""A config or manifest that is a FIFO, a device, a dangling link or read-only: one line
naming the path, exit 2, at once (never a hang, a MemoryError or a traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from .conftest import TODAY, cli_command

pytestmark = pytest.mark.anyio

CONFIG = """\
[run]
start = "-3d"
end = "today"
output_dir = "out"
manifest = "{manifest}"
[defaults]
api_key = "test-key"
base_url = "http://127.0.0.1:9"
reports = ["Daily campaign summary"]
[[workspace]]
name = "acme"
app_id = "ACME01"
"""


async def backfill(*argv: str) -> tuple[int, str]:
    with anyio.fail_after(30):  # a hang fails here
        result = await anyio.run_process(cli_command(*argv), check=False)
    return result.returncode, result.stderr.decode()


def assert_one_line(code: int, err: str, path: Path | str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "MemoryError" not in err
    lines = err.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("backfill: error: "), err
    assert str(path) in lines[0], err
    for word in words:
        assert word in lines[0], err


def write_config(tmp: Path, manifest: str = "out/manifest.jsonl") -> Path:
    path = tmp / "backfill.toml"
    path.write_text(CONFIG.format(manifest=manifest))
    return path


def size_or_zero(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


RUN = ("--today", TODAY.isoformat(), "--no-progress")


@pytest.mark.parametrize("command", ["run", "plan", "verify"])
async def test_a_config_that_is_a_fifo(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "backfill.toml"
    os.mkfifo(fifo)
    extra = RUN if command == "run" else ()
    assert_one_line(*await backfill(command, str(fifo), *extra), fifo, "named pipe")


async def test_a_config_that_is_dev_zero() -> None:
    assert_one_line(*await backfill("run", "/dev/zero", *RUN), "/dev/zero",
                    "character device")
    assert_one_line(*await backfill("status", "/dev/zero"), "/dev/zero", "character device")


async def test_a_dangling_config_link(tmp_path: Path) -> None:
    link = tmp_path / "backfill.toml"
    link.symlink_to(tmp_path / "nowhere.toml")
    assert_one_line(*await backfill("run", str(link), *RUN), link, "link to nothing")


@pytest.fixture(params=["fifo", "dangling-link", "link", "device"])
def bad_manifest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "manifest.jsonl"
    if request.param == "fifo":
        os.mkfifo(path)
    elif request.param == "dangling-link":
        path.symlink_to(tmp_path / "gone.jsonl")
    elif request.param == "link":
        (tmp_path / "elsewhere.jsonl").write_bytes(b"")
        path.symlink_to(tmp_path / "elsewhere.jsonl")
    else:
        path = Path("/dev/zero")
    yield path


async def test_a_manifest_that_is_no_regular_file(tmp_path: Path, bad_manifest: Path) -> None:
    config = write_config(tmp_path, str(bad_manifest))
    for argv in (["run", str(config), *RUN], ["status", str(config)],
                 ["status", str(config), "--json"]):
        assert_one_line(*await backfill(*argv), bad_manifest)
    assert size_or_zero(tmp_path / "elsewhere.jsonl") == 0  # nothing written through it


@pytest.fixture
def immutable_manifest(tmp_path: Path) -> Iterator[Path]:
    """A manifest even root cannot open for writing (chattr +i)."""
    chattr = shutil.which("chattr")
    path = tmp_path / "out" / "manifest.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False,
                                        capture_output=True).returncode:
        pytest.skip("needs chattr +i (root, a file system with attributes)")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


async def test_a_read_only_manifest(tmp_path: Path, immutable_manifest: Path) -> None:
    config = write_config(tmp_path)
    assert_one_line(*await backfill("run", str(config), *RUN), immutable_manifest,
                    "permission denied")
    code, err = await backfill("status", str(config))
    assert code == 0, err  # reading it is fine
