"""Fixtures: a small demo database made once per test session (through the package itself), the
shell binary that `cargo test` built, and a fresh empty database per test."""

import os
import pathlib
import subprocess

import pytest

import journeydb

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.journeydb"
    with journeydb.demo(path, events=20_000):
        pass
    return path


@pytest.fixture()
def demo(demo_path):
    with journeydb.connect(demo_path) as con:
        yield con


@pytest.fixture()
def empty(tmp_path):
    with journeydb.connect(tmp_path / "db") as con:
        yield con


@pytest.fixture(scope="session")
def shell():
    """The `journeydb` shell binary (JOURNEYDB_BIN, else the one `cargo test` builds)."""
    path = pathlib.Path(os.environ.get("JOURNEYDB_BIN", ROOT / "target" / "debug" / "journeydb"))
    if not path.exists():
        subprocess.run(["cargo", "build", "--quiet", "--bin", "journeydb"], cwd=ROOT, check=True)
    return path
