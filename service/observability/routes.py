"""Request -> route path template, the bounded `endpoint` label of the metrics and access line.

The table is built from the app's routes the first time it is needed (every router is included
by then), with Starlette's path compiler, so requests refused before routing (401, 413, 415)
get their route's template too. A path no route matches is `other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope

__all__ = ["OTHER", "RouteTemplates"]

OTHER = "other"


@dataclass(frozen=True)
class _Template:
    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method


class RouteTemplates:
    """Resolves requests to the path template of the app route they go to."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._table: list[_Template] | None = None

    def _build(self) -> list[_Template]:
        table = []
        for route in iter_route_contexts(self._app.routes):
            if route.path is None:
                continue
            pattern, _, _ = compile_path(route.path)
            methods = None if route.methods is None else frozenset(route.methods)
            table.append(_Template(route.path, pattern, methods))
        return table

    def resolve(self, scope: Scope) -> str:
        """The template of the route for `scope` (also when only the method is wrong: 405)."""
        if self._table is None:
            self._table = self._build()
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return _first_match(self._table, scope["method"], path)


def _first_match(table: Iterable[_Template], method: str, path: str) -> str:
    wrong_method: str | None = None
    for template in table:
        if template.pattern.match(path) is None:
            continue
        if template.methods is None or method in template.methods:
            return template.path
        wrong_method = wrong_method or template.path
    return wrong_method or OTHER
