"""Matching through the HTTP API: query filters, crop and collapsed copies, takes ranked against a reference,
references marked from the page, and the library's duplicates; each one Library call, answered as its JSON."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from retrieval import Library  # noqa: E402
from retrieval.web.app import create_app  # noqa: E402
from tests.factories import write_audio  # noqa: E402
from tests.test_duplicates import melody  # noqa: E402
from tests.test_filters import RATE, sound  # noqa: E402

DURATIONS = {"kicks": [1.0, 1.3, 1.6, 2.0], "hats": [2.5, 2.8, 3.1, 3.5], "loops": [4.0, 4.0, 4.0, 4.0]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """audio/{kicks,hats,loops}/ of four distinct sounds each (kicks short, loops long), labelled by folder, and
    the first kick a reference; indexed with the fast logmel-stats encoder (these tests need no fine scores)."""
    folder = tmp_path_factory.mktemp("web-matching")
    for first, (label, durations) in zip((0, 10, 20), DURATIONS.items()):
        (folder / "audio" / label).mkdir(parents=True)
        for number, duration_s in enumerate(durations):
            write_audio(folder / "audio" / label / f"{label}{number}.wav", sound(first + number, duration_s), RATE)
    library = Library.open(folder / "lib", create=True, encoder="logmel-stats")
    library.index([folder / "audio"], label_from="parent")
    library.index([folder / "audio" / "kicks" / "kicks0.wav"], reference=True)
    return folder


@pytest.fixture(scope="module")
def library(folder) -> Library:
    return Library.open(folder / "lib")


@pytest.fixture(scope="module")
def client(library) -> TestClient:
    return TestClient(create_app(library), raise_server_exceptions=False)


@pytest.fixture
def own_client(folder, tmp_path) -> TestClient:
    """A client over a copy of the module's library, so that marking references does not leak between tests."""
    shutil.copytree(folder / "lib", tmp_path / "lib")
    return TestClient(create_app(Library.open(tmp_path / "lib")), raise_server_exceptions=False)


def post_query(client: TestClient, audio: Path, /, **params):
    with open(audio, "rb") as handle:
        return client.post("/api/query", params=params, files={"file": (audio.name, handle)})


def query(client: TestClient, audio: Path, /, **params) -> dict:
    response = post_query(client, audio, **params)
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


def recording_id(client: TestClient, name: str) -> int:
    items = client.get("/api/recordings", params={"q": name}).json()["items"]
    return next(item["id"] for item in items if item["name"] == name)


def names(hits) -> list[str]:
    return [Path(hit["path"]).name for hit in hits]


# query filters, crop and collapsed copies


def test_a_label_filter_returns_only_that_label_and_still_k_of_them(client, folder):
    loop = folder / "audio" / "loops" / "loops0.wav"
    plain = query(client, loop, k=3)["results"]
    assert names(plain)[0] == "loops0.wav" and {hit["label"] for hit in plain} != {"kicks"}
    kicks = query(client, loop, k=3, label="kicks")["results"]
    assert len(kicks) == 3 and {hit["label"] for hit in kicks} == {"kicks"}
    assert [hit["rank"] for hit in kicks] == [1, 2, 3]
    assert len(query(client, loop, k=10, label="kicks")["results"]) == 4  # all there are


def test_path_duration_and_reference_filters_restrict_the_results(client, library, folder):
    hat = folder / "audio" / "hats" / "hats1.wav"
    assert set(names(query(client, hat, k=3, path="loops/*.wav")["results"])) <= {f"loops{n}.wav" for n in range(4)}
    long = query(client, hat, k=4, min_duration=3.9)["results"]
    assert len(long) == 4 and {hit["label"] for hit in long} == {"loops"}
    short = query(client, hat, k=4, max_duration=2.0)["results"]
    assert len(short) == 4 and {hit["label"] for hit in short} == {"kicks"}
    between = query(client, hat, k=10, min_duration=2.6, max_duration=3.2)["results"]
    assert sorted(names(between)) == ["hats1.wav", "hats2.wav"]
    references = {row.id for row in library.recordings() if row.is_reference}
    only = query(client, hat, k=5, references_only="true")["results"]
    assert [hit["recording_id"] for hit in only] == sorted(references) and len(references) == 1


def test_exclude_self_leaves_out_every_recording_with_the_uploads_bytes(client, folder):
    hat = folder / "audio" / "hats" / "hats2.wav"
    assert names(query(client, hat, k=3)["results"])[0] == "hats2.wav"
    without = query(client, hat, k=3, exclude_self="true")["results"]
    assert len(without) == 3 and "hats2.wav" not in names(without)


def test_a_crop_queries_only_that_stretch_of_the_upload_at_its_own_times(client, tmp_path):
    two = np.concatenate([sound(22, 4.0), np.zeros(RATE // 2, np.float32), sound(12, 3.1)])  # loops2, then hats2
    path = write_audio(tmp_path / "two-sounds.wav", two, RATE)
    whole = query(client, path, k=1)
    assert whole["duration_s"] == pytest.approx(7.6, abs=0.05)
    first = query(client, path, k=1, to_s=4.0)
    assert first["duration_s"] == pytest.approx(4.0, abs=0.05) and names(first["results"]) == ["loops2.wav"]
    last = query(client, path, k=1, from_s=4.5)
    assert last["duration_s"] == pytest.approx(3.1, abs=0.05) and names(last["results"]) == ["hats2.wav"]
    assert last["results"][0]["occurrences"][0]["query_start_s"] >= 4.5 - 1e-6
    middle = query(client, path, k=1, from_s=1.0, to_s=3.0)
    assert middle["duration_s"] == pytest.approx(2.0, abs=0.05)
    past = error_of(post_query(client, path, from_s=60), 400)
    assert "past the end of two-sounds.wav" in past and str(tmp_path) not in past and "/tmp" not in past


@pytest.mark.parametrize("params, status", [({"min_duration": 3, "max_duration": 1}, 400), ({"path": " "}, 400),
                                            ({"min_duration": -1}, 422), ({"from_s": 3, "to_s": 2}, 400),
                                            ({"to_s": 0}, 422), ({"from_s": "inf"}, 422), ({"label": ""}, 422),
                                            ({"max_duration": "nan"}, 422)])
def test_bad_filters_and_crops_are_refused_in_one_line(client, folder, params, status):
    error_of(post_query(client, folder / "audio" / "kicks" / "kicks1.wav", **params), status)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> TestClient:
    """A library (the default encoder: copies need real scores) of five melodies and a byte copy of the first."""
    folder = tmp_path_factory.mktemp("web-copies")
    (folder / "audio").mkdir()
    for seed in range(5):
        write_audio(folder / "audio" / f"melody{seed}.wav", melody(seed), RATE)
    shutil.copy(folder / "audio" / "melody0.wav", folder / "audio" / "melody0-backup.wav")
    library = Library.open(folder / "lib", create=True)
    library.index([folder / "audio"])
    return TestClient(create_app(library), raise_server_exceptions=False)


def test_duplicates_group_a_byte_copy_with_its_original(copies):
    response = copies.get("/api/duplicates")
    assert response.status_code == 200, response.text
    groups = response.json()["groups"]
    assert len(groups) == 1 and set(groups[0]) == {"kind", "score", "recording_ids", "paths"}
    assert groups[0]["kind"] == "exact" and groups[0]["score"] == 100
    assert sorted(names({"path": path} for path in groups[0]["paths"])) == ["melody0-backup.wav", "melody0.wav"]
    assert copies.get("/api/duplicates", params={"min_score": 100}).json()["groups"] == groups
    error_of(copies.get("/api/duplicates", params={"min_score": 101}), 422)


def test_collapsed_results_show_a_copy_once_with_the_other_also_at(copies, tmp_path):
    take = write_audio(tmp_path / "take.wav", melody(0), RATE)
    plain = query(copies, take, k=3)["results"]
    assert set(names(plain[:2])) == {"melody0.wav", "melody0-backup.wav"}
    collapsed = query(copies, take, k=3, collapse_duplicates="true")["results"]
    assert len(collapsed) == 3 and [hit["rank"] for hit in collapsed] == [1, 2, 3]
    first, rest = collapsed[0], collapsed[1:]
    assert {Path(first["path"]).name, *(Path(path).name for path in first["also_at"])} == {
        "melody0.wav", "melody0-backup.wav"}
    assert all(not hit["also_at"] and not hit["path"].endswith(("melody0.wav", "melody0-backup.wav")) for hit in rest)


# takes ranked against a reference


def test_takes_are_ranked_against_one_reference_best_first(client, library):
    kick = recording_id(client, "kicks0.wav")
    response = client.get("/api/ranking", params={"reference": kick})
    assert response.status_code == 200, response.text
    ranking = response.json()
    assert ranking == library.rank_takes(reference=kick).to_dict()
    assert [item["recording_id"] for item in ranking["references"]] == [kick] and ranking["label"] is None
    takes = ranking["takes"]
    assert len(takes) == 11 and kick not in {item["recording_id"] for item in takes}  # every take; not itself
    assert [item["rank"] for item in takes] == list(range(1, 12))
    assert [item["score"] for item in takes] == sorted((item["score"] for item in takes), reverse=True)
    assert all(isinstance(item["match"], bool) and item["path"] for item in takes)


def test_takes_are_ranked_against_a_labels_references(client):
    ranking = client.get("/api/ranking", params={"label": "kicks"}).json()
    assert [item["label"] for item in ranking["references"]] == ["kicks"] and ranking["label"] == "kicks"
    assert len(ranking["takes"]) == 11


@pytest.mark.parametrize("params", [{}, {"reference": 1, "label": "kicks"}])
def test_ranking_needs_exactly_one_of_a_reference_and_a_label(client, params):
    assert "exactly one of reference=ID and label=L" in error_of(client.get("/api/ranking", params=params), 400)


def test_ranking_against_what_the_library_does_not_hold_is_refused(client):
    assert "no recording with id 999" in error_of(client.get("/api/ranking", params={"reference": 999}), 404)
    assert "no reference labelled 'hats'" in error_of(client.get("/api/ranking", params={"label": "hats"}), 400)
    error_of(client.get("/api/ranking", params={"reference": 0}), 422)


# references marked from the page


def test_marking_a_reference_shows_in_the_recording_and_in_the_ranking(own_client):
    hat = recording_id(own_client, "hats0.wav")
    before = own_client.get(f"/api/recordings/{hat}").json()
    assert before["is_reference"] is False
    error_of(own_client.get("/api/ranking", params={"label": "hats"}), 400)

    marked = own_client.post(f"/api/recordings/{hat}/reference")
    assert marked.status_code == 200, marked.text
    assert marked.json() == {**before, "is_reference": True} == own_client.get(f"/api/recordings/{hat}").json()
    ranking = own_client.get("/api/ranking", params={"label": "hats"}).json()
    assert [item["recording_id"] for item in ranking["references"]] == [hat]
    assert hat not in {item["recording_id"] for item in ranking["takes"]} and len(ranking["takes"]) == 10
    assert own_client.get("/api/stats").json()["references"] == 2

    unmarked = own_client.delete(f"/api/recordings/{hat}/reference")
    assert unmarked.status_code == 200 and unmarked.json() == before == own_client.get(f"/api/recordings/{hat}").json()
    error_of(own_client.get("/api/ranking", params={"label": "hats"}), 400)
    assert hat in {item["recording_id"] for item in
                   own_client.get("/api/ranking", params={"label": "kicks"}).json()["takes"]}


def test_marking_is_idempotent_and_unknown_recordings_are_404(own_client):
    kick = recording_id(own_client, "kicks0.wav")  # a reference already
    assert own_client.post(f"/api/recordings/{kick}/reference").json()["is_reference"] is True
    assert own_client.get("/api/stats").json()["references"] == 1
    for method in ("post", "delete"):
        assert "no recording with id 999" in error_of(getattr(own_client, method)("/api/recordings/999/reference"), 404)
        error_of(getattr(own_client, method)(f"/api/recordings/{2**63}/reference"), 422)


def test_the_new_routes_are_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post", "delete"} <= set(paths["/api/recordings/{recording_id}/reference"])
    assert "get" in paths["/api/ranking"] and "get" in paths["/api/duplicates"]
    parameters = {parameter["name"]: parameter for parameter in paths["/api/query"]["post"]["parameters"]}
    assert {"label", "path", "min_duration", "max_duration", "references_only", "exclude_self", "from_s", "to_s",
            "collapse_duplicates"} <= set(parameters)
    assert "same bytes" in parameters["exclude_self"]["description"]
