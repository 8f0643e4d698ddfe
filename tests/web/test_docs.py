"""The OpenAPI document, the offline /docs page, and the health endpoints."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

PROBLEM_JSON = "application/problem+json"
METHODS = {"get", "post", "put", "patch", "delete"}


class Assets(HTMLParser):
    """Collects every src= and href= of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def node_path(ref: str) -> list[str]:
    assert ref.startswith("#/"), ref
    return ref[2:].split("/")


def follow(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target = spec
        for part in node_path(node["$ref"]):
            target = target[part]
        node = target
    return node


def api_operations(spec: dict):
    for path, item in spec["paths"].items():
        if not path.startswith("/api"):
            continue
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


# /openapi.json --------------------------------------------------------------


def test_the_openapi_document_is_openapi_3_served_without_a_token(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["openapi"].startswith("3.")
    assert response.headers.get("X-Request-Id")


def test_the_openapi_document_declares_a_bearer_security_scheme(spec):
    schemes = spec["components"]["securitySchemes"]

    bearer = [s for s in schemes.values() if s.get("type") == "http"
              and s.get("scheme", "").lower() == "bearer"]

    assert bearer
    assert bearer[0].get("bearerFormat") == "JWT"
    name = next(n for n, s in schemes.items() if s is bearer[0])
    assert {name: []} in spec["security"]


def test_every_api_operation_of_the_contract_is_documented(spec):
    documented = {(method, path) for method, path, _ in api_operations(spec)}

    assert documented >= {
        ("GET", "/api/jobs"), ("POST", "/api/jobs"),
        ("GET", "/api/jobs/{job_id}"),
        ("GET", "/api/jobs/{job_id}/history"),
        ("POST", "/api/jobs/{job_id}/assignments"),
        ("POST", "/api/jobs/{job_id}/assignments/{assignment_id}/confirm"),
        ("POST", "/api/jobs/{job_id}/assignments/{assignment_id}/cancel"),
        ("POST", "/api/jobs/{job_id}/start"),
        ("POST", "/api/jobs/{job_id}/complete"),
        ("POST", "/api/jobs/{job_id}/cancel"),
        ("GET", "/api/assignments"),
        ("GET", "/api/events"),
    }


def test_every_api_operation_documents_its_errors_as_problem_json(spec):
    operations = list(api_operations(spec))

    checked = 0
    for method, path, operation in operations:
        errors = {status: follow(spec, response)
                  for status, response in operation["responses"].items()
                  if status == "default" or int(status) >= 400}
        assert "401" in errors, f"{method} {path} does not document 401"
        for status, response in errors.items():
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], f"{method} {path} {status}"
            schema = follow(spec, content[PROBLEM_JSON]["schema"])
            assert {"type", "title", "status", "detail", "code"} <= set(
                schema["properties"]), f"{method} {path} {status}"
            checked += 1

    assert checked >= 3 * len(operations)


@pytest.mark.parametrize("method, path, statuses", [
    ("POST", "/api/jobs", {"401", "403", "422"}),
    ("GET", "/api/jobs", {"401", "403", "422"}),
    ("GET", "/api/jobs/{job_id}", {"401", "404"}),
    ("POST", "/api/jobs/{job_id}/assignments", {"400", "401", "403", "404", "412", "422"}),
    ("POST", "/api/jobs/{job_id}/assignments/{assignment_id}/confirm",
     {"400", "401", "403", "404", "412"}),
    ("POST", "/api/jobs/{job_id}/assignments/{assignment_id}/cancel",
     {"400", "401", "403", "404", "412", "422"}),
    ("POST", "/api/jobs/{job_id}/start", {"400", "401", "403", "404", "412"}),
    ("POST", "/api/jobs/{job_id}/complete", {"400", "401", "403", "404", "412"}),
    ("POST", "/api/jobs/{job_id}/cancel", {"400", "401", "403", "404", "412", "422"}),
    ("GET", "/api/jobs/{job_id}/history", {"401", "403", "404"}),
    ("GET", "/api/assignments", {"401", "403", "422"}),
    ("POST", "/api/webhooks", {"400", "401", "403", "422"}),
    ("GET", "/api/webhooks", {"401", "403"}),
    ("GET", "/api/webhooks/{endpoint_id}", {"401", "403", "404"}),
    ("DELETE", "/api/webhooks/{endpoint_id}", {"401", "403", "404"}),
    ("POST", "/api/webhooks/{endpoint_id}/rotate-secret", {"400", "401", "403", "404"}),
    ("GET", "/api/webhooks/{endpoint_id}/deliveries", {"401", "403", "404"}),
    ("POST", "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
     {"400", "401", "403", "404", "409"}),
])
def test_each_operation_documents_the_error_statuses_of_the_contract(
        spec, method, path, statuses):
    operation = spec["paths"][path][method.lower()]

    documented = set(operation["responses"])

    assert documented >= statuses


def test_the_job_resource_schema_has_the_contract_fields(spec):
    schema = spec["components"]["schemas"]["Job"]

    assert set(schema["properties"]) == {
        "id", "version", "type", "description", "durationMinutes", "priority",
        "region", "requiredSkills", "location", "serviceWindow", "status",
        "assignments", "cancellation", "createdAt", "updatedAt"}


def test_the_cancel_command_documents_its_body_and_headers(spec):
    operation = spec["paths"]["/api/jobs/{job_id}/cancel"]["post"]

    body = follow(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}

    assert set(body["properties"]) == {"reason", "reasonCode"}
    assert body["properties"]["reasonCode"]["enum"] == [
        "CustomerRequest", "ContractorUnavailable", "Weather", "Duplicate", "Other"]
    assert {"If-Match", "Idempotency-Key"} <= headers


# /docs ------------------------------------------------------------------------


def test_the_docs_page_references_only_local_assets(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert not re.search(r"https?://", html)
    assert not re.search(r"""(src|href)\s*=\s*["']//""", html)
    parser = Assets()
    parser.feed(html)
    assert any(url.endswith(".js") for url in parser.urls)
    assert any(url.endswith(".css") for url in parser.urls)


def test_every_asset_the_docs_page_references_is_served(client):
    parser = Assets()
    parser.feed(client.get("/docs").get_data(as_text=True))

    served = {}
    for url in parser.urls:
        with client.get(url) as response:
            served[url] = (response.status_code, len(response.get_data()))

    for url, (status, size) in served.items():
        assert url.startswith("/"), url
        assert status == 200, url
        assert size > 0, url


def test_the_docs_page_loads_the_openapi_document_from_this_server(client):
    html = client.get("/docs").get_data(as_text=True)

    url = re.search(r"""url:\s*["']([^"']+)["']""", html)

    assert url is not None
    assert client.get(url.group(1)).status_code == 200


def test_a_missing_docs_asset_is_a_404(client):
    response = client.get("/docs/assets/no-such-file.js")

    assert response.status_code == 404


# Health -----------------------------------------------------------------------


def test_healthz_is_200_without_a_token(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_readyz_is_200_with_the_event_store_check(client, dispatcher, create_job):
    create_job()

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["eventStore"]["status"] == "ok"
    assert body["checks"]["eventStore"]["head"] >= 1
    assert body["checks"]["readModels"]["status"] == "ok"



def test_a_created_job_links_to_every_operation_on_that_job(spec):
    operations = {op["operationId"]: (path, method)
                  for path, item in spec["paths"].items()
                  for method, op in item.items() if isinstance(op, dict) and "operationId" in op}

    links = spec["paths"]["/api/jobs"]["post"]["responses"]["201"]["links"]

    assert {link["operationId"] for link in links.values()} >= {
        "getJob", "getJobHistory", "assignJob", "startJob", "completeJob", "cancelJob"}
    for link in links.values():
        path, _ = operations[link["operationId"]]
        assert path.startswith("/api/jobs/{job_id}")
        assert link["parameters"] == {"job_id": "$response.body#/id"}


def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()
           if isinstance(op, dict) and "operationId" in op]

    assert len(ids) == len(set(ids))
    assert "cancelJob" in ids
