"""The OpenAPI 3 document, written from the route table and the request models."""

from __future__ import annotations

import re

from aiohttp import web

OPENAPI = web.AppKey("openapi", dict)

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "required": ["code", "message", "field"],
                             "properties": {"code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "field": {"type": ["string", "null"]}}}},
}
_PARAM = re.compile(r"{(\w+)}")


def _query_parameters(model) -> list[dict]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema["properties"].items()]


_ERROR_BODY = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _component(model, components: dict[str, dict]) -> dict:
    """A reference to `model`'s schema, which (with the models it uses) joins the components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build(routes, version: str) -> dict:
    paths: dict[str, dict] = {}
    components: dict[str, dict] = {"Error": _ERROR}
    for route in routes:
        operation: dict = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.handler.__module__.rsplit('.', 1)[-1]}_"
                           f"{route.handler.__name__}",
            "parameters": [{"name": name, "in": "path", "required": True,
                            "schema": {"type": "string" if name == "prepay_id" else "integer"}}
                           for name in _PARAM.findall(route.path)],
            "responses": {
                str(route.status): {"description": "success"},
                **{str(status): {"description": meaning, **(_ERROR_BODY if status >= 400 else {})}
                   for status, meaning in route.also},
                "4XX": {"description": "error", **_ERROR_BODY},
            },
        }
        if route.links:
            operation["responses"][str(route.status)]["links"] = {
                name: {"operationId": target, "parameters": parameters}
                for name, target, parameters in route.links}
        if route.query is not None:
            operation["parameters"] += _query_parameters(route.query)
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _component(route.body, components)}}}
        if route.response is not None:
            operation["responses"][str(route.status)]["content"] = {"application/json": {
                "schema": _component(route.response, components)}}
        if route.access != "public":
            operation["security"] = [{"bearer": []}]
            operation["x-access"] = route.access
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Xingcheng mall", "version": version,
                 "description": "Mall backend for Changsha mini-program shops."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
