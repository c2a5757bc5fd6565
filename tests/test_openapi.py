"""The OpenAPI document is accurate: every route and parameter declared, the answers it
lists are the answers given, and methods and paths it does not list answer 405 (with
Allow) and 404. A bounded schemathesis run calls every documented operation with the
public and the secret key: no answer is a 5xx, and every answer matches its document."""

from __future__ import annotations

import re

import pytest
import schemathesis
import schemathesis.specs.openapi.checks  # noqa: F401 - registers the OpenAPI checks
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis.checks import CHECKS

from tests.support import PUBLIC_KEY, SECRET_KEY, LiveEdge, basic

CHECKED = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
           "response_headers_conformance", "response_schema_conformance",
           "missing_required_header", "allow_header_conformance")
# /v1/callbacks/email takes a report as it arrived by mail: any bytes, a report among them
schemathesis.openapi.media_type("message/rfc822", st.one_of(
    st.binary(max_size=400),
    st.just(b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nspam\r\n--b\r\n"
            b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
            b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <x@y>\r\n--b--\r\n")))
CHECK_FUNCTIONS = [check for check in CHECKS.get_all() if check.__name__ in CHECKED]
EXAMPLES_PER_OPERATION = 40


@pytest.fixture
def live(module_edge: LiveEdge) -> LiveEdge:
    return module_edge


def document(live: LiveEdge) -> dict:
    return live.http.get("/openapi.json").json()


def test_the_checks_asked_for_exist() -> None:
    assert sorted(check.__name__ for check in CHECK_FUNCTIONS) == sorted(CHECKED)


def test_every_path_parameter_is_declared(live: LiveEdge) -> None:
    doc = document(live)
    seen = 0
    for path, operations in doc["paths"].items():
        assert ":" not in path, path  # Starlette's {name:path} is not OpenAPI's
        names = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)
            seen += len(names)
    assert seen >= 6


def test_push_key_is_documented_as_it_works(live: LiveEdge) -> None:
    operation = document(live)["paths"]["/v1/push-key"]["get"]
    assert "security" not in operation
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["writeKey"]
    assert live.http.get("/v1/push-key", params={"writeKey": PUBLIC_KEY}).status_code == 200
    unknown = live.http.get("/v1/push-key", params={"writeKey": "nope"})
    assert unknown.status_code == 401 and unknown.json()["field"] == "writeKey"


@pytest.mark.parametrize("path, required", [
    ("/v1/track", ["event"]), ("/v1/alias", ["previousId", "userId"]), ("/v1/group", ["groupId"]),
    ("/v1/e", ["type"]),
])
def test_ingest_schemas_name_what_they_require(live: LiveEdge, path: str, required: list[str]):
    schema = document(live)["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    parts = schema["schema"]["allOf"]
    assert {"required": required} in parts
    assert {"anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]} in parts


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/v1/track", "OPTIONS, POST"),
    ("PUT", "/v1/profiles/anon:x", "DELETE, GET, HEAD, OPTIONS"),
    ("PATCH", "/v1/catalog/products/p1", "DELETE, GET, HEAD, OPTIONS"),
    ("POST", "/healthz", "GET, HEAD"),
])
def test_a_method_a_route_does_not_take_answers_405_with_allow(live, method, path, allow):
    answer = live.http.request(method, path, headers=basic(SECRET_KEY))
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow
    assert answer.json()["field"] == "method" and allow in answer.json()["reason"]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/v1/nope", "/v1/profiles", "/v1/track/extra", "/nope"])
def test_an_unknown_path_answers_404(live: LiveEdge, method: str, path: str) -> None:
    answer = live.http.request(method, path, headers=basic(SECRET_KEY))
    assert answer.status_code == 404, (method, path, answer.status_code)
    assert answer.json()["field"] == "path"


def test_every_operation_answers_as_documented(live: LiveEdge) -> None:
    schema = schemathesis.openapi.from_dict(document(live))
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            for key in (SECRET_KEY, PUBLIC_KEY):
                case.call_and_validate(base_url=live.url, headers=basic(key),
                                       checks=CHECK_FUNCTIONS)

        try:
            call()
        except (Exception, BaseExceptionGroup) as failure:  # reported with the others' below
            failures.append(f"{operation.label}: {failure}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
