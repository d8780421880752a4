"""Every /api/v1 operation reads its body through `GuardedRoute`: caller first, then a
bounded body."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.datastructures import State

from dockyard.api.manage import create_manage_api
from dockyard.api.manage.access import requires_sign_in
from dockyard.api.manage.app import ROUTERS
from dockyard.api.manage.routing import GuardedRoute


def test_every_operation_is_a_guarded_route() -> None:
    operations = [route for router in ROUTERS for route in router.routes]
    assert operations
    for route in operations:
        assert isinstance(route, GuardedRoute), route


def test_the_openapi_document_lists_413_for_every_operation_that_reads_a_body() -> None:
    paths = create_manage_api(State()).openapi()["paths"]
    reading = [
        (route.path, method.lower())
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.body_field is not None
        for method in route.methods
    ]
    assert reading
    for path, method in reading:
        documented = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # {name:repository} → {name}
        assert "413" in paths[documented][method]["responses"], (method, path)


def test_sign_in_is_found_through_dependencies() -> None:
    by_name = {
        route.name: route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    }
    assert requires_sign_in(by_name["create_org"].dependant)
    assert not requires_sign_in(by_name["notify_catalog_entry"].dependant)
    assert not requires_sign_in(by_name["list_repositories"].dependant)
