"""Schemathesis against `/openapi.json`: requests generated from the schema, valid and invalid, never a 5xx.

RELIABILITY.md records a run (requests per operation and mode, failures found).
"""
from __future__ import annotations

from collections import Counter

import pytest

pytestmark = pytest.mark.slow
schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from retrieval import Library  # noqa: E402
from retrieval.web.app import create_app  # noqa: E402
from tests.factories import chirp, noise, sine, write_audio  # noqa: E402

RATE = 16000
EXAMPLES = 60  # per operation and generation mode


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    write_audio(folder / "rise.wav", chirp(200, 3000, 2.0), RATE)
    write_audio(folder / "tone.m4a", sine(440, 2.0), RATE)
    write_audio(folder / "hiss.flac", noise(2.0, amplitude=0.2, seed=1), RATE)
    write_audio(folder / "fall.aiff", chirp(3000, 200, 1.5), RATE)
    references = tmp_path_factory.mktemp("references")
    write_audio(references / "best.wav", chirp(210, 2900, 2.0), RATE)
    library = Library.open(tmp_path_factory.mktemp("library"), create=True)
    library.index([folder])
    library.index([references], reference=True)
    return create_app(library)


def test_no_generated_request_makes_the_server_fail(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    sent: Counter[str] = Counter()
    server_errors = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def send(case):
                response = case.call(timeout=300)  # the first UMAP map compiles numba code for ~20 s
                sent[f"{operation.label} {mode.value}"] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.method} {case.formatted_path} {case.query}: "
                                         f"{response.status_code} {response.text[:200]}")
            try:
                send()
            except Unsatisfiable:  # an operation without parameters has no invalid request to send
                assert mode is GenerationMode.NEGATIVE
    total = sum(sent.values())
    print(f"\n{total} requests over {len(sent)} operation/mode pairs, {len(server_errors)} server errors")
    for label, count in sorted(sent.items()):
        print(f"  {count:4d}  {label}")
    assert len(sent) >= 25 and total >= 10 * len(sent)
    assert not server_errors, "\n".join(server_errors[:20])
