"""Property tests of the whole API from its own OpenAPI schema (schemathesis).

Every operation in ``/api/schema/`` is called in-process through the WSGI application with
generated inputs, once as a user with a token and once anonymously. No call may answer 5xx,
and each answer must match the schema: a documented status code, content type and body.
Enqueueing is stubbed (the ``enqueued`` fixture), so no broker is needed.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A few examples per operation keep this a quick part of `make test`; the benchmark run
# (docs/benchmarks.md) used 50;
# FACEAGE_SCHEMATHESIS_EXAMPLES=50 does the same here.
EXAMPLES = hypothesis_settings(
    max_examples=int(os.environ.get("FACEAGE_SCHEMATHESIS_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def api_schema(db, enqueued, settings):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from faceage_site.wsgi import application

    settings.FACEAGE_UPLOAD_RATE = ""  # generated uploads must not run into the rate limit
    # As Django's test client does: the end of a request must not close the connection
    # that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def token(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


def operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


def fuzz_operation(operation, headers: dict[str, str]) -> int:
    """Call one operation with generated valid and invalid inputs; returns how many."""
    calls = []

    @EXAMPLES
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    def call(case):
        calls.append(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    call()
    return len(calls)


def fuzz(api_schema, headers: dict[str, str]) -> dict[str, int]:
    """Run every operation's examples (valid and invalid inputs); returns the case counts.

    schemathesis's own pytest integration (``schema.parametrize``) is not used: with
    pytest 9 its lazy loader fails on a renamed pytest attribute. Calling each operation's
    hypothesis strategy directly does the same work. All failures are collected, so one
    report names every operation that broke.
    """
    counts: dict[str, int] = {}
    failures: list[str] = []
    for operation in operations(api_schema):
        label = f"{operation.method.upper()} {operation.path}"
        try:
            counts[label] = fuzz_operation(operation, headers)
        except Exception as error:  # reported below, with every other operation's
            counts[label] = -1
            failures.append(f"{label}: {error}")
    assert not failures, "\n\n".join(failures)
    return counts


def test_every_operation_as_a_user_with_a_token(api_schema, token):
    counts = fuzz(api_schema, {"Authorization": f"Token {token}"})
    print("cases per operation:", counts)
    assert all(counts.values()), counts


def test_every_operation_anonymously(api_schema):
    counts = fuzz(api_schema, {})
    print("cases per operation:", counts)
    assert all(counts.values()), counts


def test_the_schema_lists_the_operations(api_schema):
    """The fuzzing above covers something: the upload and the listing at least."""
    found = {(op.method.upper(), op.path) for op in operations(api_schema)}
    assert ("POST", "/api/v1/predictions/") in found
    assert ("GET", "/api/v1/predictions/") in found


def test_a_server_error_would_be_caught(api_schema, monkeypatch):
    """The check is live: an operation that crashes makes the fuzzing fail."""
    from predictor.api.views import ModelVersionViewSet

    def crash(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(ModelVersionViewSet, "get_queryset", crash)
    (models,) = [op for op in operations(api_schema) if op.path == "/api/v1/models/"]
    from schemathesis.core.failures import ServerError

    with pytest.raises(BaseExceptionGroup) as raised:
        fuzz_operation(models, {})
    assert raised.group_contains(ServerError), raised.value


def test_every_reference_in_the_schema_resolves(client):
    """A ``$ref`` written by hand (the upload's 202, either answer) names a component that
    the schema really has: a dangling one would leave clients generated from it broken."""
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    refs: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert "#/components/schemas/Prediction" in refs
    components = schema["components"]["schemas"]
    dangling = sorted(
        {ref for ref in refs if ref.removeprefix("#/components/schemas/") not in components}
    )
    assert not dangling, dangling
