from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# Before anything imports huggingface_hub, which reads these once: its own requests (headers, telemetry) go to
# 127.0.0.1, where nothing listens, never to the real Hub.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

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


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _loopback_only(address) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if host not in LOOPBACK:
        raise AssertionError(f"a test tried to open a network connection to {address!r}; only 127.0.0.1 is allowed")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with sockets refused except to 127.0.0.1, where the tests' own Hub stand-in listens."""
    connect, create_connection = socket.socket.connect, socket.create_connection

    def guarded_connect(self, address):
        _loopback_only(address)
        return connect(self, address)

    def guarded_create_connection(address, *args, **kwargs):
        _loopback_only(address)
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Empty caches, and a Hub endpoint on 127.0.0.1 where nothing listens, so no test sees a developer's cache or the
    real Hub. Hub tests point HF_ENDPOINT at their own stand-in."""
    monkeypatch.setenv("HYENADNA_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
