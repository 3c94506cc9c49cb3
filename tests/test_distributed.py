"""The Ray engine: decoding and embedding on a local Ray instance, metadata in a real PostgreSQL server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from retrieval import Library
from tests.factories import chirp, noise, sine, write_audio
from tests.postgres import postgres_server

RATE = 16000
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    for number in range(10):
        label = ("rising", "steady")[number % 2]
        (folder / label).mkdir(parents=True, exist_ok=True)
        duration_s = 1.0 + number * 0.4
        samples = (chirp(200 + 50 * number, 3000, duration_s) if label == "rising" else sine(300 + 120 * number, duration_s))
        write_audio(folder / label / f"{number}{('.wav', '.mp3', '.flac', '.m4a', '.opus')[number % 5]}",
                    samples + noise(duration_s, amplitude=0.02, seed=number), RATE)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    return folder


def index(*args) -> dict:
    result = runner.invoke(app, ["index", *map(str, args), "--json", "--quiet", "--label-from", "parent"])
    assert "Traceback" not in result.output
    return json.loads(result.output.splitlines()[-1])


@pytest.mark.slow
def test_ray_engine_with_postgresql_finds_what_the_local_engine_finds(ray_cluster, postgres_url, folder, tmp_path):
    distributed = index(folder, "--library", tmp_path / "ray-lib", "--engine", "ray", "--db", postgres_url)
    local = index(folder, "--library", tmp_path / "local-lib", "--workers", "1")
    assert distributed["added"] == local["added"] == 10
    assert [Path(item["path"]).name for item in distributed["failed"]] == ["broken.wav"]
    assert distributed["stats"]["windows"] == local["stats"]["windows"]
    assert distributed["stats"]["index"]["vectors"] == distributed["stats"]["windows"]
    assert distributed["stats"]["labels"] == {"rising": 5, "steady": 5}

    on_ray = Library.open(tmp_path / "ray-lib", db_url=postgres_url)
    assert on_ray.store.engine.dialect.name == "postgresql"
    in_process = Library.open(tmp_path / "local-lib")
    for clip in sorted(folder.glob("*/*")):
        expected = [(hit.path, hit.score) for hit in in_process.query(clip, k=5).results]
        found = [(hit.path, hit.score) for hit in on_ray.query(clip, k=5).results]
        assert [path for path, _ in found] == [path for path, _ in expected]
        assert [score for _, score in found] == pytest.approx([score for _, score in expected], abs=0.5)

    again = index(folder, "--library", tmp_path / "ray-lib", "--engine", "ray", "--db", postgres_url)
    assert again["added"] == 0 and again["unchanged"] == 10  # planned on the driver: nothing sent to Ray


def test_missing_ray_is_one_clear_line(monkeypatch, folder, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = runner.invoke(app, ["index", str(folder), "--library", str(tmp_path / "lib"), "--engine", "ray", "--quiet"])
    assert result.exit_code == 1 and "pip install 'soundalike[ray]'" in result.output
