"""The HTTP API of `soundalike serve` through FastAPI's TestClient: every route, its JSON, its errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cli import app as cli_app  # noqa: E402
from retrieval import Library  # noqa: E402
from retrieval.web.app import create_app  # noqa: E402
from tests.factories import chirp, sine, write_audio  # noqa: E402
from tests.test_cli import RATE, distinct_sounds  # noqa: E402

LABELS = {"up.opus": "sweep", "down.flac": "sweep", "low.mp3": "tone", "high.m4a": "tone", "hiss.wav": "noise",
          "gated.wav": "noise", "beep.aiff": "tone", "warble.ogg": "tone"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The eight distinct sounds in one folder per label."""
    folder = tmp_path_factory.mktemp("recordings")
    for name, samples in distinct_sounds().items():
        (folder / LABELS[name]).mkdir(exist_ok=True)
        write_audio(folder / LABELS[name] / name, samples, RATE)
    return folder


@pytest.fixture(scope="module")
def library(tmp_path_factory, folder) -> Library:
    """A library of the eight sounds with one reference sample, clustered and mapped."""
    root = tmp_path_factory.mktemp("library")
    references = tmp_path_factory.mktemp("references")
    write_audio(references / "sweep-reference.wav", chirp(210, 2900, 2.0), RATE)
    library = Library.open(root, create=True)
    library.index([folder], label_from="parent")
    library.index([references], reference=True)
    library.cluster(k=3)
    library.map("pca")
    return library


@pytest.fixture(scope="module")
def client(library) -> TestClient:
    return TestClient(create_app(library), raise_server_exceptions=False)


def upload(client: TestClient, route: str, path: Path, **params) -> dict:
    with open(path, "rb") as handle:
        response = client.post(route, params=params, files={"file": (path.name, handle)})
    assert response.status_code == 200, response.text
    return response.json()


def recording_id(client: TestClient, name: str) -> int:
    return client.get("/api/recordings", params={"q": name}).json()["items"][0]["id"]


# the routes


def test_health_and_stats(client, library):
    assert client.get("/api/health").json() == {"status": "ok", "library": str(library.root)}
    stats = client.get("/api/stats").json()
    assert stats == json.loads(json.dumps(library.stats().to_dict(), default=str))
    assert stats["recordings"] == 9 and stats["references"] == 1


def test_query_answers_one_line_of_query_json(client, library, folder):
    path = folder / "sweep" / "up.opus"
    result = upload(client, "/api/query", path, k=3)
    output = CliRunner().invoke(cli_app, ["query", str(path), "--library", str(library.root), "--json", "-k", "3"]).output
    from_cli = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    assert set(result) == set(from_cli) and result["query"] == "up.opus"
    assert result["results"] == from_cli["results"] and result["reference"] == from_cli["reference"]
    assert result["results"][0]["path"] == str(path) and result["results"][0]["score"] >= 99
    assert all("recording_id" in hit for hit in result["results"])


def test_query_takes_the_raw_body_too(client, folder):
    body = (folder / "tone" / "low.mp3").read_bytes()
    response = client.post("/api/query", params={"k": 1, "filename": "take.mp3"}, content=body,
                           headers={"content-type": "audio/mpeg"})
    assert response.status_code == 200
    assert response.json()["query"] == "take.mp3" and Path(response.json()["results"][0]["path"]).name == "low.mp3"


def test_score_answers_one_line_of_score_json_with_the_reference(client, folder):
    result = upload(client, "/api/score", folder / "sweep" / "up.opus")
    assert set(result) == {"take", "duration_s", "recording_id", "label", "reference"} and result["take"] == "up.opus"
    assert set(result["reference"]) == {"path", "recording_id", "label", "distance", "score", "match", "start_s",
                                        "end_s", "threshold"}
    assert Path(result["reference"]["path"]).name == "sweep-reference.wav"


def test_recordings_are_paged_and_filtered_by_path_or_label(client):
    first = client.get("/api/recordings", params={"limit": 4}).json()
    second = client.get("/api/recordings", params={"limit": 4, "offset": 4}).json()
    assert first["total"] == 9 and len(first["items"]) == 4 and len(second["items"]) == 4
    assert {item["id"] for item in first["items"]}.isdisjoint(item["id"] for item in second["items"])
    by_label = client.get("/api/recordings", params={"q": "noise"}).json()
    assert sorted(item["name"] for item in by_label["items"]) == ["gated.wav", "hiss.wav"]
    assert client.get("/api/recordings", params={"q": "warble"}).json()["items"][0]["label"] == "tone"
    assert client.get("/api/recordings", params={"q": "100%_"}).json()["total"] == 0
    item = first["items"][0]
    assert set(item) == {"id", "path", "name", "label", "duration_s", "is_reference", "status", "error", "codec",
                         "sample_rate", "channels", "size_bytes", "cluster"}
    assert all(item["cluster"] is not None for item in first["items"])
    assert client.get(f"/api/recordings/{item['id']}").json() == item


def test_audio_is_the_file_itself_with_byte_ranges(client, folder):
    path = folder / "tone" / "high.m4a"
    response = client.get(f"/api/recordings/{recording_id(client, 'high.m4a')}/audio")
    assert response.status_code == 200 and response.content == path.read_bytes()
    assert response.headers["content-type"] == "audio/mp4"
    partial = client.get(f"/api/recordings/{recording_id(client, 'high.m4a')}/audio", headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206 and partial.content == path.read_bytes()[10:20]


def test_formats_browsers_cannot_play_are_converted_to_wav_on_request(client, folder):
    aiff = recording_id(client, "beep.aiff")
    assert client.get(f"/api/recordings/{aiff}/audio").content == (folder / "tone" / "beep.aiff").read_bytes()
    converted = client.get(f"/api/recordings/{aiff}/audio", params={"playable": 1})
    assert converted.headers["content-type"] == "audio/wav" and converted.content[:4] == b"RIFF"
    assert client.get(f"/api/recordings/{aiff}/audio", params={"playable": 1}, headers={"Range": "bytes=0-3"}).status_code == 206
    m4a = recording_id(client, "high.m4a")
    assert client.get(f"/api/recordings/{m4a}/audio", params={"playable": 1}).content == \
        (folder / "tone" / "high.m4a").read_bytes()


def test_neighbours_of_a_stored_recording_leave_it_out(client):
    own = recording_id(client, "up.opus")
    result = client.get(f"/api/recordings/{own}/neighbours", params={"k": 3}).json()
    assert [hit["rank"] for hit in result["results"]] == [1, 2, 3]
    assert own not in [hit["recording_id"] for hit in result["results"]]
    assert result["reference"] is not None


def test_map_and_clusters(client):
    points = client.get("/api/map").json()["points"]
    assert len(points) == 9 and {"recording_id", "x", "y", "cluster", "is_reference"} <= set(points[0])
    clustering = client.get("/api/clusters").json()
    assert clustering["k"] == 3 and sum(cluster["size"] for cluster in clustering["clusters"]) == 9


def test_compare_an_upload_with_a_recording(client, folder):
    path = folder / "sweep" / "down.flac"
    other = recording_id(client, "down.flac")
    comparison = upload(client, "/api/compare", path, recording_id=other)
    assert comparison["path_a"] == "down.flac" and comparison["score"] >= 99
    with open(path, "rb") as handle:
        plot = client.post("/api/compare/plot", params={"recording_id": other}, files={"file": (path.name, handle)})
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png" and plot.content[:4] == b"\x89PNG"


def test_compare_two_stored_recordings(client):
    up, down = recording_id(client, "up.opus"), recording_id(client, "down.flac")
    comparison = client.get(f"/api/recordings/{up}/compare/{down}").json()
    assert Path(comparison["path_a"]).name == "up.opus" and Path(comparison["path_b"]).name == "down.flac"
    assert comparison["score"] < 90
    plot = client.get(f"/api/recordings/{up}/compare/{down}/plot")
    assert plot.headers["content-type"] == "image/png" and plot.content[:4] == b"\x89PNG"
    error_of(client.get(f"/api/recordings/{up}/compare/999"), 404)


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        response = client.get(asset)
        assert response.status_code == 200
        text = response.text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a download
        assert "http://" not in text and "https://" not in text
    assert "http" not in page.text.replace("http-equiv", "") and 'src="//' not in page.text


def test_openapi_schema_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    for route in ("/api/query", "/api/score", "/api/recordings", "/api/recordings/{recording_id}",
                  "/api/recordings/{recording_id}/audio", "/api/stats", "/api/health"):
        assert route in schema["paths"]
    body = schema["paths"]["/api/query"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]


# errors: JSON, one line, 4xx for bad input


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


def test_unknown_ids_and_routes_are_404(client):
    assert "no recording with id 999" in error_of(client.get("/api/recordings/999"), 404)
    error_of(client.get("/api/recordings/999/audio"), 404)
    error_of(client.get("/api/recordings/999/neighbours"), 404)
    error_of(client.get("/api/nothing-here"), 404)
    error_of(client.get("/api/recordings/abc"), 422)


def test_ids_and_offsets_beyond_an_sql_integer_are_refused_at_the_edge(client):
    too_big = 2**63
    for route in (f"/api/recordings/{too_big}", f"/api/recordings/{too_big}/audio", f"/api/recordings/{too_big}/neighbours",
                  f"/api/recordings/1/compare/{too_big}", f"/api/recordings/{2**64}/compare/1/plot", "/api/recordings/0",
                  "/api/recordings/-1", f"/api/recordings?offset={too_big}"):
        assert "than" in error_of(client.get(route), 422), route  # "less than or equal to ..." / "greater than ..."
    with open(__file__, "rb") as handle:
        error_of(client.post("/api/compare", params={"recording_id": too_big}, files={"file": ("a.wav", handle)}), 422)
    assert client.get("/api/recordings", params={"offset": 2**63 - 1}).json()["items"] == []
    error_of(client.get(f"/api/recordings/{2**63 - 1}"), 404)


def test_a_method_a_route_does_not_take_is_405_naming_the_allowed_ones(client):
    response = client.delete("/api/stats")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert client.put("/api/query").headers["allow"] == "POST"


def test_uploads_with_damaged_tags_or_headers_are_4xx_or_answered(client, folder, tmp_path):
    from tests.factories import mp3_claiming_frames, wav_with_zero_bits_per_sample, with_tag_not_utf8
    tone = sine(440, 2.0)
    damaged = [with_tag_not_utf8(write_audio(tmp_path / "latin1.m4a", tone, RATE)),
               with_tag_not_utf8(write_audio(tmp_path / "latin1.mp3", tone, RATE)),
               wav_with_zero_bits_per_sample(tmp_path / "zero-bits.wav", tone, RATE),
               mp3_claiming_frames(tmp_path / "days.mp3", tone, RATE)]
    for path in damaged:
        for route in ("/api/query", "/api/score"):
            response = client.post(route, files={"file": (path.name, path.read_bytes())})
            assert response.status_code in (200, 400, 415, 422), (path.name, route, response.text)
            if response.status_code != 200:
                assert path.name in error_of(response, response.status_code)


def test_path_traversal_never_reaches_the_file_system(client):
    for attempt in ("/api/recordings/..%2F..%2F..%2Fetc%2Fpasswd/audio", "/api/recordings/%2Fetc%2Fpasswd/audio",
                    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                    "/static/..%2F..%2F..%2Fapp.py", "/api/recordings/1/audio?path=/etc/passwd"):
        response = client.get(attempt)
        assert "root:" not in response.text and "create_app" not in response.text
        if "?path=" not in attempt:
            assert 400 <= response.status_code < 500


def test_an_uploads_file_name_is_only_shown_never_used_as_a_path(client, folder):
    body = (folder / "tone" / "low.mp3").read_bytes()
    for given, shown in (("../../../tmp/evil.mp3", "evil.mp3"), ("C:\\Users\\me\\take 1.mp3", "take 1.mp3"),
                         ("<script>.mp3", "_script_.mp3")):
        response = client.post("/api/query", params={"k": 1}, files={"file": (given, body)})
        assert response.status_code == 200 and response.json()["query"] == shown
    assert not Path("/tmp/evil.mp3").exists()


def test_an_upload_that_is_not_audio_is_a_4xx_with_one_line(client, folder):
    truncated = (folder / "tone" / "high.m4a").read_bytes()[:300]
    wav_header = (folder / "noise" / "hiss.wav").read_bytes()[:44] + np.random.default_rng(1).bytes(3)
    for name, content in (("notes.wav", b"not audio at all\n" * 50), ("random.m4a", np.random.default_rng(0).bytes(4000)),
                          ("nothing.txt", b"plain text"), ("cut.m4a", truncated), ("header-only.wav", wav_header),
                          ("video.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(200)), ("clip.webm", b"\x1aE\xdf\xa3" + bytes(64))):
        for route in ("/api/query", "/api/score"):
            response = client.post(route, files={"file": (name, content)})
            assert 400 <= response.status_code < 500 and name in error_of(response, response.status_code)
    assert "empty" in error_of(client.post("/api/query", files={"file": ("empty.wav", b"")}), 400)
    assert "file" in error_of(client.post("/api/query", files={"other": ("a.wav", b"x")}), 400)
    assert error_of(client.post("/api/query", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}), 400)
    error_of(client.post("/api/query", params={"k": 0}, files={"file": ("a.wav", b"x")}), 422)


def test_an_upload_over_the_limit_is_413(library, folder):
    small = TestClient(create_app(library, max_upload_bytes=1000), raise_server_exceptions=False)
    big = (folder / "noise" / "hiss.wav").read_bytes()
    assert "limit" in error_of(small.post("/api/query", files={"file": ("hiss.wav", big)}), 413)
    assert "limit" in error_of(small.post("/api/query", content=big), 413)

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for start in range(0, len(big), 500):
            yield big[start: start + 500]
    assert "limit" in error_of(small.post("/api/query", content=chunks()), 413)


def test_compare_with_an_unknown_recording_is_404(client, folder):
    with open(folder / "sweep" / "up.opus", "rb") as handle:
        error_of(client.post("/api/compare", params={"recording_id": 999}, files={"file": ("up.opus", handle)}), 404)


def test_an_empty_library_answers_with_empty_results_and_404_for_its_map(tmp_path, folder):
    client = TestClient(create_app(Library.open(tmp_path / "empty", create=True)))
    assert client.get("/api/recordings").json() == {"total": 0, "offset": 0, "limit": 50, "items": []}
    result = upload(client, "/api/query", folder / "tone" / "low.mp3")
    assert result["results"] == [] and result["reference"] is None
    error_of(client.get("/api/map"), 404)
    assert "soundalike cluster" in error_of(client.get("/api/clusters"), 404)


def test_clusters_and_map_are_computed_again_on_post(tmp_path, folder):
    library = Library.open(tmp_path / "library", create=True)
    library.index([folder / "sweep", folder / "noise"])
    client = TestClient(create_app(library))
    assert client.get("/api/map").json()["points"][0]["cluster"] is None  # computed on first use, not clustered
    assert client.post("/api/clusters", params={"k": 2}).json()["k"] == 2
    points = client.post("/api/map").json()["points"]
    assert len(points) == 4 and {point["cluster"] for point in points} == {0, 1}
    assert client.get("/api/clusters").json()["k"] == 2


def test_on_loopback_only_loopback_host_names_are_answered(library):
    guarded = TestClient(create_app(library, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1:8000")
    assert guarded.get("/api/health").status_code == 200
    assert guarded.get("/api/health", headers={"host": "localhost:8000"}).status_code == 200
    error_of(guarded.get("/api/health", headers={"host": "evil.example:8000"}), 400)
    error_of(guarded.get("/", headers={"host": "127.0.0.1.evil.example"}), 400)


def test_concurrent_requests_all_get_their_own_answers(client, folder):
    from concurrent.futures import ThreadPoolExecutor

    names = ["up.opus", "low.mp3", "hiss.wav", "warble.ogg"]
    paths = {path.name: path for path in folder.rglob("*.*")}

    def ask(name: str) -> str:
        client.get("/api/recordings", params={"limit": 5})
        return Path(upload(client, "/api/query", paths[name], k=1)["results"][0]["path"]).name

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(ask, names * 2)) == names * 2


def test_uploads_leave_no_temporary_files(client, folder, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    upload(client, "/api/query", folder / "tone" / "low.mp3", k=1)
    client.post("/api/query", files={"file": ("bad.wav", b"junk" * 100)})
    assert list(tmp_path.iterdir()) == []


# the `serve` command


def test_serve_binds_to_loopback_by_default_and_passes_its_options(library, monkeypatch):
    import retrieval.web

    calls = []
    monkeypatch.setattr(retrieval.web, "serve", lambda lib, **options: calls.append((lib.root, options)))
    result = CliRunner().invoke(cli_app, ["serve", "--library", str(library.root), "--max-upload-mb", "2"])
    assert result.exit_code == 0, result.output
    root, options = calls[0]
    assert root == library.root and options["host"] == "127.0.0.1" and options["port"] == 8000
    assert options["max_upload_bytes"] == 2 << 20


def test_serve_without_the_web_extra_names_it(library, monkeypatch):
    import retrieval.web

    monkeypatch.setattr(retrieval.web, "web_available", lambda: False)
    result = CliRunner().invoke(cli_app, ["serve", "--library", str(library.root)])
    assert result.exit_code == 1 and "pip install 'soundalike[web]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_serve_on_a_missing_library_is_one_line(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "--library", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no library here" in result.output and "Traceback" not in result.output


# a library that grows while the server runs


def test_the_server_sees_recordings_indexed_by_another_process(tmp_path, folder):
    root = tmp_path / "library"
    first = tmp_path / "first"
    shutil.copytree(folder / "sweep", first)
    Library.open(root, create=True).index([first])
    client = TestClient(create_app(Library.open(root)))
    query = tmp_path / "query.wav"
    write_audio(query, sine(440, 2.0) + sine(880, 2.0, amplitude=0.2), RATE)
    before = upload(client, "/api/query", query, k=5)
    assert len(before["results"]) == 2

    second = tmp_path / "second"
    second.mkdir()
    write_audio(second / "a440.wav", sine(440, 2.0) + sine(880, 2.0, amplitude=0.2), RATE)
    Library.open(root).index([second])  # another Library object: what `soundalike index` does in its own process
    after = upload(client, "/api/query", query, k=5)
    assert len(after["results"]) == 3 and Path(after["results"][0]["path"]).name == "a440.wav"
    assert client.get("/api/stats").json()["recordings"] == 3


def test_the_server_uses_references_tagged_by_another_process(tmp_path, folder):
    root = tmp_path / "library"
    Library.open(root, create=True).index([folder / "sweep"])
    client = TestClient(create_app(Library.open(root)))
    query = folder / "sweep" / "up.opus"
    assert upload(client, "/api/query", query)["reference"] is None
    other = Library.open(root)  # what `soundalike tag` or `index --reference` does in its own process
    other.store.set_tags([row.id for row in other.store.recordings() if row.path.endswith("up.opus")],
                         is_reference=True)
    reference = upload(client, "/api/query", query)["reference"]
    assert Path(reference["path"]).name == "up.opus" and reference["score"] >= 99
    other.store.set_tags([reference["recording_id"]], is_reference=False)
    assert upload(client, "/api/query", query)["reference"] is None


@pytest.mark.slow
def test_queries_keep_being_answered_while_soundalike_index_runs_in_another_process(tmp_path, folder):
    import subprocess
    import sys

    root = tmp_path / "library"
    Library.open(root, create=True).index([folder / "sweep"])
    client = TestClient(create_app(Library.open(root)), raise_server_exceptions=False)
    more = tmp_path / "more"
    more.mkdir()
    for number in range(20):
        write_audio(more / f"tone{number:02d}.flac", sine(300 + 60 * number, 3.0), RATE)
    indexing = subprocess.Popen([sys.executable, "-m", "cli", "index", str(more), "--library", str(root), "--quiet"],
                                cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    query = folder / "sweep" / "up.opus"
    answered = 0
    while indexing.poll() is None:
        with open(query, "rb") as handle:
            response = client.post("/api/query", params={"k": 3}, files={"file": (query.name, handle)})
        assert response.status_code == 200, response.text
        assert Path(response.json()["results"][0]["path"]).name == "up.opus"
        answered += 1
    assert indexing.returncode == 0 and answered > 0
    tone = upload(client, "/api/query", more / "tone07.flac", k=1)["results"][0]
    assert Path(tone["path"]).name == "tone07.flac" and tone["score"] >= 99
    assert client.get("/api/stats").json()["recordings"] == 22
