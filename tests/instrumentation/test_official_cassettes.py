"""agentotel's OpenAI capture against the official OpenTelemetry instrumentation, cassette by cassette.

Each recorded test cassette of the official instrumentation (fetched from its released sdist, see
`official_cassettes`) is replayed on loopback through the real `openai` SDK twice: once under agentotel's
instrumentation, once under the official one. Every call must give agentotel one span, as the official gives; and
every attribute the official span carries (content aside: its JSON layout is each instrumentation's own) must be on
agentotel's span with the same value, and the span's status must agree — except the deliberate differences named
in `DELIBERATE`, each with its reason.

The main virtualenv holds `opentelemetry-instrumentation-openai-v2` (the release agentotel's benchmarks compare
with); its successor, `opentelemetry-instrumentation-genai-openai`, needs another `opentelemetry-util-genai` and
runs in a virtualenv of its own (`.ci/genai-openai.sh`). Each reference is compared with its own cassettes.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agentotel import semconv as sc
from agentotel.instrumentation.openai import OpenAIInstrumentor as AgentotelOpenAI
from agentotel.testing import capture

from . import cassette_replay
from .official_cassettes import SUCCESSOR, cassette_folder

REFERENCES: dict[str, tuple[tuple[str, str], str]] = {
    "openai-v2": (("opentelemetry-instrumentation-openai-v2", "2.4b0"), "opentelemetry.instrumentation.openai_v2"),
    "genai-openai": (SUCCESSOR, "opentelemetry.instrumentation.genai.openai"),
}
"""Each official instrumentation: the sdist its cassettes come from, and its module."""


def _error_class(value: Any) -> str:
    """`openai.NotFoundError`, `NotFoundError` and `<class 'openai.NotFoundError'>` (openai-v2 writes the class
    itself) all name `NotFoundError`."""
    return str(value).removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1]


DELIBERATE: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    sc.ERROR_TYPE: (
        lambda ours, theirs: _error_class(ours) == _error_class(theirs),
        "agentotel writes the fully-qualified class name the semantic conventions ask for (`openai.NotFoundError`); "
        "the official ones write the bare name or the class's repr: the same class is required",
    ),
    sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: (
        lambda ours, theirs: ours is not None,
        "with `encoding_format` base64 (the SDK's default) the official ones count the base64 text's characters "
        "(8192 for 1536 floats); agentotel counts the decoded vector's dimensions",
    ),
    "gen_ai.response.time_to_first_chunk": (
        lambda ours, theirs: isinstance(ours, float) and ours >= 0,
        "a time measured in each replay: present in both is what can agree",
    ),
}

_CONTENT_PREFIXES = ("gen_ai.input.", "gen_ai.output.", "gen_ai.system_instructions", "gen_ai.tool.definitions")


def _available() -> list[str]:
    return [name for name, (_, module) in REFERENCES.items() if importlib.util.find_spec(module.rsplit(".", 1)[0])]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cassette" not in metafunc.fixturenames:
        return
    cases: list[Any] = []
    for name in _available():
        package, module = REFERENCES[name]
        if not _importable(module):
            continue
        folder, why = cassette_folder(package)
        if folder is None:
            cases.append(pytest.param(name, None, marks=pytest.mark.skip(reason=why), id=f"{name}-unavailable"))
            continue
        cases.extend(pytest.param(name, path, id=f"{name}-{path.stem}") for path in cassette_replay.cassettes(folder))
    if not cases:
        cases.append(pytest.param(None, None, marks=pytest.mark.skip(reason="no official instrumentation installed")))
    metafunc.parametrize(("reference", "cassette"), cases)


def _llm_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if sc.GEN_AI_OPERATION_NAME in (s.attributes or {})]


def _replay_under(
    instrumentor: Any, server: cassette_replay.CassetteServer, path: Path
) -> tuple[list[ReadableSpan], list[str], BaseException | None]:
    """The LLM spans of a replay of `path` from `server` with only `instrumentor` on; what the server found wrong;
    and what the replay raised (an instrumentation that breaks the app's code)."""
    server.errors.clear()
    with capture(capture_content=True) as cap:
        instrumentor.instrument()
        raised: BaseException | None = None
        try:
            cassette_replay.replay(server, cassette_replay.plan_for(path.stem), is_async="async" in path.stem)
        except Exception as error:
            raised = error
        finally:
            instrumentor.uninstrument()
    return _llm_spans(list(cap.spans)), list(server.errors), raised


@pytest.fixture
def only_ours_off() -> Iterator[None]:
    """agentotel's instrumentor off around the test (as `init()` may have left it on), then as it was."""
    ours = AgentotelOpenAI()
    was_on = ours.is_instrumented_by_opentelemetry
    if was_on:
        ours.uninstrument()
    yield
    if was_on:
        ours.instrument()


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    found = {}
    for key, value in (span.attributes or {}).items():
        if key.startswith(_CONTENT_PREFIXES):
            continue
        found[key] = list(value) if isinstance(value, tuple) else value
    return found


def differences(ours: ReadableSpan, theirs: ReadableSpan) -> list[str]:
    """What agentotel's span says otherwise than the official one, deliberate differences left out."""
    found = []
    mine = _comparable(ours)
    for key, value in _comparable(theirs).items():
        if key in DELIBERATE and DELIBERATE[key][0](mine.get(key), value):
            continue
        if mine.get(key) != value:
            found.append(f"{key}: agentotel {mine.get(key)!r}, official {value!r}")
    if (ours.status.status_code is StatusCode.ERROR) != (theirs.status.status_code is StatusCode.ERROR):
        found.append(f"status: agentotel {ours.status.status_code.name}, official {theirs.status.status_code.name}")
    return found


@pytest.mark.usefixtures("only_ours_off")
def test_agentotel_records_what_the_official_instrumentation_records(reference: str, cassette: Path) -> None:
    _, module = REFERENCES[reference]
    official = importlib.import_module(module).OpenAIInstrumentor()

    # One server for both: the spans name the same address and port.
    with cassette_replay.CassetteServer(cassette_replay.load(cassette)) as server:
        ours, our_server_errors, our_error = _replay_under(AgentotelOpenAI(), server, cassette)
        theirs, _, their_error = _replay_under(official, server, cassette)

    assert not our_server_errors, our_server_errors
    # The app's code ran as it does with no instrumentation: what the replay raised, the SDK raised for the
    # recorded answer (an HTTP error) or the app raised on purpose; agentotel never adds an error of its own.
    assert our_error is None or (isinstance(our_error, Exception) and _expected(our_error)), repr(our_error)
    if their_error is not None and not _expected(their_error):
        # The official instrumentation broke the replay (e.g. openai-v2's async stream `close()` is not
        # awaitable): nothing to compare with, and agentotel's spans were checked above.
        assert ours, "agentotel recorded no span"
        return
    assert len(ours) == len(theirs), ([s.name for s in ours], [s.name for s in theirs])
    found = [f"{o.name}: {d}" for o, t in zip(ours, theirs, strict=True) for d in differences(o, t)]
    assert not found, "\n".join(found)


def _expected(error: BaseException) -> bool:
    """An error the app meets with no instrumentation: the SDK's for a recorded HTTP error, or the app's own."""
    import openai

    return isinstance(error, openai.APIError | cassette_replay.UserError)


def test_a_differing_attribute_is_reported() -> None:
    """The comparison finds a wrong value, a missing key and a status that disagrees (it is not vacuous)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("ours", attributes={sc.GEN_AI_REQUEST_MODEL: "gpt-4o", "error.type": "x.Boom"}):
        pass
    with tracer.start_as_current_span("theirs") as span:
        span.set_attributes({sc.GEN_AI_REQUEST_MODEL: "gpt-4", sc.GEN_AI_RESPONSE_ID: "r1", "error.type": "Boom"})
        span.set_status(StatusCode.ERROR)
    ours, theirs = exporter.get_finished_spans()
    found = differences(ours, theirs)
    assert any(d.startswith(f"{sc.GEN_AI_REQUEST_MODEL}:") for d in found), found
    assert any(d.startswith(f"{sc.GEN_AI_RESPONSE_ID}: agentotel None") for d in found), found
    assert any(d.startswith("status:") for d in found), found
    assert not any(d.startswith("error.type") for d in found), found  # the same class, deliberately spelled apart
