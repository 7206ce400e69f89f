# -*- test-case-name: tests.test_apiserver,tests.e2e.test_protocol -*-
"""
What a Kubernetes API server answers on the wire, written once as checks that any server
must pass: L{tests.e2e.test_protocol} asks them of a real kube-apiserver, and
L{tests.test_apiserver} of the project's own (L{kubernetai.apiserver}), so that the two
cannot drift apart unnoticed.

Each check takes C{get(path)}, a blocking GET as a client allowed to list Services,
returning (status, headers with lower-case names, body bytes), and a server holding at
least two Services in namespace C{protocol}.
"""

from __future__ import annotations

import json

NAMESPACE = "protocol"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"


def json_of(answer) -> dict:
    status, headers, body = answer
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    return json.loads(body)


def check_pages(get) -> None:
    """A page of a list: its kind, a continue token and the count left; items without kind."""
    status, headers, body = answer = get(SERVICES + "?limit=1")
    page = json_of(answer)
    assert status == 200, answer
    assert (page["kind"], page["apiVersion"]) == ("ServiceList", "v1"), page
    assert page["metadata"]["continue"] and page["metadata"]["remainingItemCount"] >= 1, page["metadata"]
    assert "kind" not in page["items"][0] and "apiVersion" not in page["items"][0], page["items"][0]
    rest = json_of(get(SERVICES + "?limit=1&continue=" + page["metadata"]["continue"]))
    assert rest["metadata"]["resourceVersion"] == page["metadata"]["resourceVersion"], rest["metadata"]


def check_resource_version_match_needs_a_version(get) -> None:
    """resourceVersionMatch without resourceVersion: 422 Invalid, naming the field."""
    answer = get(SERVICES + "?resourceVersionMatch=NotOlderThan")
    status = json_of(answer)
    assert (answer[0], status["reason"], status["code"]) == (422, "Invalid", 422), status
    assert status["details"]["causes"][0]["field"] == "resourceVersionMatch", status


def check_list_from_the_future(get) -> None:
    """A list at a resourceVersion the server has not reached: 504 Timeout, Retry-After 1."""
    current = int(json_of(get(SERVICES))["metadata"]["resourceVersion"])
    answer = get(SERVICES + f"?resourceVersion={current + 1_000_000}")
    status = json_of(answer)
    assert (answer[0], answer[1].get("retry-after"), status["reason"]) == (504, "1", "Timeout"), answer
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge", status


def check_not_found(get) -> None:
    """An unknown resource of a served group: a JSON Status; an unknown group: plain text."""
    resource = get("/api/v1/widgets")
    assert (resource[0], json_of(resource)["reason"]) == (404, "NotFound"), resource
    assert json_of(resource)["message"] == "the server could not find the requested resource", resource
    group = get("/apis/widgets.example.com/v1/widgets")
    assert (group[0], group[1].get("content-type")) == (404, "text/plain; charset=utf-8"), group


def check_bad_selector(get) -> None:
    """A label selector that does not parse: 400 BadRequest."""
    answer = get(SERVICES + "?labelSelector=app%20in%20web")
    assert (answer[0], json_of(answer)["reason"]) == (400, "BadRequest"), answer


def check_version(get) -> None:
    """/version: the fields a v1.35 server gives."""
    version = json_of(get("/version"))
    assert set(version) == {"major", "minor", "emulationMajor", "emulationMinor", "minCompatibilityMajor",
                            "minCompatibilityMinor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
                            "goVersion", "compiler", "platform"}, version
    assert version["major"] == "1", version


CHECKS = (check_pages, check_resource_version_match_needs_a_version, check_list_from_the_future,
          check_not_found, check_bad_selector, check_version)


def failed_checks(get) -> list[str]:
    """Run every check; what each failing one found, as text (empty when all pass)."""
    failures = []
    for check in CHECKS:
        try:
            check(get)
        except Exception as err:  # a KeyError or a non-JSON body says as much as a failed assert
            failures.append(f"{check.__name__}: {type(err).__name__}: {err}")
    return failures
