"""The OpenAPI 3.1 document, generated from the operation table and the services' signatures."""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from .._version import __version__
from ..api.arguments import Param
from ..api.operations import Operation
from ..models import StorageRef

__all__ = ["openapi_document"]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
STORAGE_REF = {
    "type": "object",
    "properties": {
        "ref": {"type": "string"},
        "inline": {"type": "string", "contentEncoding": "base64"},
        "size": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string"},
        "media_type": {"type": "string"},
    },
    "required": ["size", "sha256", "media_type"],
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR, "StorageRef": STORAGE_REF}

    def of(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        origin = typing.get_origin(tp)
        if origin is typing.Union or origin is types.UnionType:
            return {"anyOf": [self.of(m) for m in typing.get_args(tp)]}
        if origin in (list, tuple):
            items = [a for a in typing.get_args(tp) if a is not Ellipsis]
            return {"type": "array", "items": self.of(items[0]) if items else {}}
        if origin in (dict, Mapping) or origin is typing.Mapping:
            args = typing.get_args(tp)
            return {"type": "object", "additionalProperties": self.of(args[1]) if args else {}}
        if isinstance(tp, type):
            return self._of_class(tp)
        return {}

    def _of_class(self, tp: type) -> dict[str, Any]:
        simple: dict[type, dict[str, Any]] = {
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            float: {"type": "number"},
            str: {"type": "string"},
            Decimal: {"type": "string", "description": "a decimal number"},
            datetime: {"type": "string", "format": "date-time"},
            bytes: {"type": "string", "contentEncoding": "base64"},
        }
        if tp is StorageRef:
            return {"$ref": "#/components/schemas/StorageRef"}
        if issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        for kind, schema in simple.items():
            if tp is kind:
                return schema
        if tp in (dict, list):
            return {"type": "object" if tp is dict else "array"}
        if attrs.has(tp):
            name = tp.__name__
            if name not in self.components:
                self.components[name] = {}  # placeholder: recursion stops here
                hints = typing.get_type_hints(tp)
                fields = attrs.fields(tp)
                self.components[name] = {
                    "type": "object",
                    "properties": {f.name: self.of(hints[f.name]) for f in fields},
                    "required": [f.name for f in fields],
                }
            return {"$ref": f"#/components/schemas/{name}"}
        return {}


def _reply(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    if op.kind == "bytes":
        content = {op.media_type: {"schema": {"type": "string", "format": "binary"}}}
        return {"200": {"description": "the bytes", "content": content}}
    if op.reply is None:
        return {"204": {"description": "done"}}
    schema = schemas.of(op.reply)
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


_LOGIN_BODY = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "loginType": {"type": "string", "enum": ["client", "admin"]},
    },
    "additionalProperties": False,
}


def openapi_document(
    operations: tuple[Operation, ...], params: Mapping[str, tuple[Param, ...]]
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `operations` whose arguments are `params`."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    errors = {
        str(status): {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in (
            (400, "bad input"),
            (401, "not authenticated"),
            (403, "not allowed"),
            (404, "not found"),
            (409, "conflict"),
            (413, "body too large"),
            (429, "quota exceeded"),
        )
    }
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "tags": [op.name.split(".")[0]],
            "responses": _reply(op, schemas) | errors,
        }
        if op.public:
            entry["security"] = []
        args = [p for p in params.get(op.name, ()) if p.name not in op.path_params]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in op.path_params
        ]
        if op.method == "GET":
            parameters += [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "schema": schemas.of(p.annotation),
                }
                for p in args
            ]
        elif op.name == "auth.login":
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _LOGIN_BODY}},
            }
        elif args:
            body = {
                "type": "object",
                "properties": {p.name: schemas.of(p.annotation) for p in args},
                "required": [p.name for p in args if p.required],
                "additionalProperties": False,
            }
            entry["requestBody"] = {
                "required": any(p.required for p in args),
                "content": {"application/json": {"schema": body}},
            }
        if parameters:
            entry["parameters"] = parameters
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "aifactory", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "header", "name": "x-bitware-session-token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"session": []}, {"apiKey": []}],
    }
