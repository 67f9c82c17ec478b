"""``/openapi.json``: an OpenAPI 3.1 document generated from the route table (pure).

Request bodies are the pydantic models of the route modules (:mod:`controller.admin.routes`;
their JSON Schema goes into ``components.schemas``), so the document cannot drift from what
the server validates.
"""

from __future__ import annotations

import functools
from typing import Any

from controller.admin.routing import Route

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong"},
        "field": {"type": ["string", "null"],
                  "description": "path of the bad input, e.g. windows[0].start"},
        "status": {"type": "integer"},
        "value": {"description": "the bad value, when there is one"},
        "errors": {"type": "array", "items": {"type": "object"},
                   "description": "every validation problem (field, message, value)"},
        "problems": {"type": "array", "items": {"type": "object"},
                     "description": "flow file problems (file, line, column, field, message)"},
    },
}
STATUS_TEXT = {400: "Bad input (the field is named)", 401: "Missing or wrong bearer token",
               404: "Not found", 409: "No flows published",
               413: "Too big (the limit is named)", 422: "Flow files with errors",
               503: "Redis or ARI unavailable"}


def _operation(r: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag],
                          "operationId": r.handler}
    params = [{"name": p.name, "in": p.where, "required": p.where == "path",
               "description": p.description, "schema": {"type": p.type}} for p in r.params]
    if params:
        op["parameters"] = params
    if r.body is not None:
        schema = r.body.model_json_schema(ref_template="#/components/schemas/{model}",
                                          by_alias=True)
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[r.body.__name__] = schema
        content: dict[str, Any] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}}}
        if r.yaml_body:
            content["application/yaml"] = {"schema": {"type": "string",
                                                      "description": "one flow file"}}
        op["requestBody"] = {"required": True, "content": content}
    ok_content = ({"application/json": {"schema": {}}} if r.produces == "application/json"
                  else {r.produces: {"schema": {"type": "string"}}})
    if r.handler == "calls_export":
        ok_content["application/json"] = {"schema": {"type": "array"}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok_content}}
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    statuses = set(r.statuses)
    if r.body is not None or r.params:
        statuses.add(400)
    if not r.public:
        statuses |= {401, 503}
        op["security"] = [{"bearerAuth": []}]
    else:
        op["security"] = []
    for st in sorted(statuses):
        responses[str(st)] = {"description": STATUS_TEXT.get(st, "Error"), "content": err}
    if r.handler == "health":
        responses["503"] = {"description": "Not ready: `failing` names ari, redis and/or "
                            "ari_replaced (another websocket took our Stasis app over "
                            "within the last 60 s)",
                            "content": {"application/json": {"schema": {}}}}
    op["responses"] = responses
    return op


@functools.cache
def document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The document of ``routes`` (:data:`controller.admin.routes.ROUTES`), in their order."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "callctl admin API", "version": "1",
                 "description": "The callctl CLI's operations over HTTP. Authenticate with "
                                "`Authorization: Bearer <admin token>` (ADMIN_TOKEN in the run "
                                "directory's secrets.env)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }
