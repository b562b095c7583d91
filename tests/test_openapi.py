"""The OpenAPI 3.1 contract of the inbox JSON API and the service API: it validates,
it describes every JSON route of ``app.url_map``, and Schemathesis, driving the live
app over WSGI as an anonymous caller, a logged-in user and a service, finds no 5xx and
no response outside the contract. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from notice import notice_event
from notice.web.openapi import NOT_JSON
from tests.support.pushapp import API_TOKEN, CSRF, push_config, use_session_login, vapid_keys
from tests.support.pushservice import PushService

DOC = "/notices/openapi.json"
#: valid examples per operation and role (26 operations x 3 roles per database; invalid
#: ones: 4 each), so the run takes under a minute per database
EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_RULE_ARG = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


@pytest.fixture
def web(app_factory: Any, push_service: PushService) -> Any:
    return _app(app_factory, push_service)


def _app(app_factory: Any, push_service: PushService, **config: Any) -> Any:
    """The app of test_web_fuzz.py: users 1 and 2 with a notice each, topic "t" that
    user 1 (and an anonymous device, where they are allowed) may use through the web
    layer."""
    app = app_factory(**push_config(push_service, **config))
    use_session_login(app)
    app.notices.topic_authorizer(
        lambda user_id, topic, action: user_id in (1, None) and topic == "t"
    )
    with app.app_context():
        notice_event(1, subject="mine", content="one")
        notice_event(2, subject="theirs", content="two")
        app.notices.topics.create("t")
        app.notices.topics.subscribe("t", user_id=1)
    return app


def _document(app: Any) -> dict[str, Any]:
    response = app.test_client().get(DOC)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def test_the_document_is_valid_openapi_3_1(web):
    document = _document(web)
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the 3.1 schema


def test_the_validator_would_catch_a_broken_document(web):
    # the check above can fail: a response without its required description is refused
    document = _document(web)
    del document["paths"]["/notices/api/unread-count"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(document)


def _openapi_paths(rule: str) -> list[str]:
    """``rule`` as OpenAPI paths: ``<int:x>`` is ``{x}``, ``<any(a, b):y>`` one path per
    choice (the document names them, rather than one ambiguous template)."""
    paths = [""]
    pos = 0
    for match in _RULE_ARG.finditer(rule):
        literal = rule[pos : match.start()]
        converter, options, name = match.groups()
        if converter == "any" and options:
            choices = [c.strip() for c in options.split(",")]
        else:
            choices = ["{" + name + "}"]
        paths = [p + literal + c for p in paths for c in choices]
        pos = match.end()
    return [p + rule[pos:] for p in paths]


def test_every_json_route_is_in_the_document(web):
    described = _document(web)["paths"]
    missing = []
    for rule in web.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if blueprint not in ("notice", "notice_api") or rule.endpoint in NOT_JSON:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for path in _openapi_paths(rule.rule):
                if method.lower() not in described.get(path, {}):
                    missing.append(f"{method} {path} ({rule.endpoint})")
    assert not missing, f"routes missing from {DOC}: {missing}"
    # and the walk does reach the routes: both APIs, with their expanded choices
    assert "post" in described["/notices/api/notices/{notice_id}/unread"]
    assert "post" in described["/api/v1/topics/subscribe"]


def test_a_new_route_without_a_description_is_caught(app_factory):
    app = app_factory()

    @app.get("/notices/api/extra", endpoint="notice.extra")
    def extra() -> str:
        return "{}"

    described = _document(app)["paths"]
    assert "/notices/api/extra" not in described  # the walk above would report it


def test_the_document_follows_the_prefixes_and_limits(app_factory):
    app = app_factory(
        NOTICE_URL_PREFIX="/inbox", NOTICE_API_PREFIX="/svc", NOTICE_PAGE_MAX=7, NOTICE_PAGE_SIZE=5
    )
    assert app.test_client().get(DOC).status_code == 404
    document = app.test_client().get("/inbox/openapi.json").get_json()
    assert "/svc/topics/list" in document["paths"]
    limit = next(
        p
        for p in document["paths"]["/inbox/api/notices"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 7
    notice_id = document["paths"]["/inbox/api/notices/{notice_id}"]["parameters"][0]
    assert notice_id["schema"]["maximum"] == 2**63 - 1


def test_the_document_can_be_turned_off(app_factory):
    app = app_factory(NOTICE_OPENAPI=False)
    response = app.test_client().get(DOC, headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_a_non_boolean_switch_fails_fast(app_factory):
    from notice.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="NOTICE_OPENAPI"):
        app_factory(NOTICE_OPENAPI="yes")


# --- Schemathesis against the live app ------------------------------------------------


def _credentials(app: Any, role: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and cookies of ``role``: a signed session of user 1 with its CSRF token,
    or the service token, or nothing."""
    if role == "user":
        session = app.session_interface.get_signing_serializer(app).dumps(
            {"uid": 1, "_notice_csrf": CSRF}
        )
        return {"X-CSRFToken": CSRF}, {app.config["SESSION_COOKIE_NAME"]: session}
    if role == "service":
        return {"Authorization": f"Bearer {API_TOKEN}"}, {}
    return {}, {}


@pytest.mark.parametrize("role", ["anonymous", "device", "user", "service"])
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_contract(
    app_factory, push_service, role, db_url
):
    """Valid requests (positive mode), then invalid ones (negative mode: wrong types,
    out-of-range ids, missing fields); both must get documented answers. ``device`` is
    an anonymous caller of an app with NOTICE_API_ANONYMOUS_DEVICES on."""
    devices = {
        "NOTICE_API_ANONYMOUS_DEVICES": True,
        "NOTICE_API_ANONYMOUS_USER": 2,
        # high enough that the fuzzer reaches past the limiter; its 429 is documented
        "NOTICE_API_ANONYMOUS_RATE": 1000,
    }
    web = _app(app_factory, push_service, **(devices if role == "device" else {}))
    schema = schemathesis.openapi.from_wsgi(DOC, web)
    headers, cookies = _credentials(web, role)
    statuses: dict[int, int] = {}
    operations = 0
    started = time.perf_counter()
    for mode, examples in ((GenerationMode.POSITIVE, EXAMPLES), (GenerationMode.NEGATIVE, 4)):
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            try:
                run()
            except Unsatisfiable:
                # negative mode: an operation without parameters or body has no wrong input
                assert mode is GenerationMode.NEGATIVE
    elapsed = time.perf_counter() - started
    print(f"\n{role} on {db_url.split(':')[0]}: {operations} runs, {elapsed:.1f} s, {statuses}")
    assert operations >= 50
    # the run reached past authentication: a logged-in user and a service get 2xx
    if role != "anonymous":
        assert any(200 <= s < 300 for s in statuses), statuses


def test_schemathesis_catches_an_answer_outside_the_contract(web):
    # the checks above can fail: without the documented 401, an anonymous call is caught
    document = _document(web)
    del document["paths"]["/notices/api/unread-count"]["get"]["responses"]["401"]
    schema = schemathesis.openapi.from_dict(document)
    schema.app = web
    case = schema["/notices/api/unread-count"]["GET"].Case()
    with pytest.raises(FailureGroup, match=r"Undocumented status code(.|\n)*Received: 401"):
        case.call_and_validate(checks=CHECKS)
