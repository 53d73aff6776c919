"""The OpenAPI document as the API really behaves: request bodies (read strictly by api/body.py,
so FastAPI cannot see them; each route names its model with ``api.acts.posts``) and the one
error shape of api/errors.py on every status it answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.acts import BODIES
ERRORS = {"401": "no key or an unknown key", "403": "the caller's authority may not take this action",
          "404": "no such case, or the caller's state is not a party", "409": "not possible in the case's stage",
          "413": "body too large", "415": "not application/json", "422": "the body or a parameter is invalid",
          "429": "rate limit exceeded (Retry-After)", "503": "the case could not answer in time (Retry-After)"}
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["status", "code", "message", "fields"],
        "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
                       "fields": {"type": "array", "items": {"type": "string"}}}}},
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas["Error"] = ERROR_SCHEMA
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                # x-public: a route without authentication (GET /v1/keys), whose only answer is 200
                if not path.startswith(("/v1", "/codec")) or operation.pop("x-public", False):
                    continue
                operation["security"] = [{"bearer": []}]
                responses = operation.setdefault("responses", {})
                for status, text in ERRORS.items():
                    responses[status] = {"description": text, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                model = BODIES.get(operation.pop("x-body", ""))
                if model is not None:
                    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                    for name, definition in body.pop("$defs", {}).items():
                        schemas.setdefault(name, definition)
                    schemas.setdefault(f"{model.__name__}Body", body)
                    operation["requestBody"] = {"required": True, "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}Body"}}}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
