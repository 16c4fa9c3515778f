from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "reference"
SHARED = REPO.parent / "shared"
MODELS = ("tiny", "deep_long", "wide")
CASES = ("batch4", "long", "padded", "single", "all_ids")

if not FIXTURES.is_dir():
    raise RuntimeError(f"reference fixtures not found at {FIXTURES}; the tests need ../shared beside the repository")


def load_io(name: str) -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / name / "io.safetensors")


def load_meta(name: str) -> dict:
    return json.loads((FIXTURES / name / "meta.json").read_text())


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with sockets disabled: no code path may reach for the network."""

    def guard(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Point the weights cache at an empty folder so tests never see a developer's real cache."""
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path / "cache"))
