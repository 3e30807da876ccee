"""A blueprint ready to run many times: its definition, and everything compiled from it once.

The engine asks a :class:`Program` for the compiled form of a value of the definition (a
runtime expression, a template of expressions, a JSON Schema validator) and gets the same
object on every run: a jq program is compiled once per site, not once per evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from ghapplets.blueprints.expressions import Expression, Template, expression_body


class Program:
    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.definition = definition
        document = definition.get("document", {})
        self.namespace: str = document.get("namespace", "")
        self.name: str = document.get("name", "")
        self.version: str = document.get("version", "")
        use = definition.get("use") or {}
        self.errors: Mapping[str, Any] = use.get("errors") or {}
        self.retries: Mapping[str, Any] = use.get("retries") or {}
        self.timeouts: Mapping[str, Any] = use.get("timeouts") or {}
        self.functions: Mapping[str, Any] = use.get("functions") or {}
        self.authentications: Mapping[str, Any] = use.get("authentications") or {}
        self.secret_names: list[str] = list(use.get("secrets") or [])
        # id(value) -> (value, compiled): holding the value keeps its id from being reused
        self._templates: dict[int, tuple[Any, Template]] = {}
        self._expressions: dict[int, tuple[Any, Expression]] = {}
        self._validators: dict[int, tuple[Any, jsonschema.protocols.Validator]] = {}

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}@{self.version}"

    def template(self, value: Any) -> Template:
        """``value`` compiled as a template: its ``${ }`` strings are expressions."""
        hit = self._templates.get(id(value))
        if hit is None or hit[0] is not value:
            hit = (value, Template(value))
            self._templates[id(value)] = hit
        return hit[1]

    def expression(self, value: str) -> Expression:
        """A field whose value is a runtime expression, with or without ``${ }``."""
        hit = self._expressions.get(id(value))
        if hit is None or hit[0] is not value:
            hit = (value, Expression(expression_body(value)))
            self._expressions[id(value)] = hit
        return hit[1]

    def validator(self, schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
        """The validator of a DSL ``schema`` (``format: json``, an inline ``document``)."""
        hit = self._validators.get(id(schema))
        if hit is None or hit[0] is not schema:
            document = schema.get("document", {})
            cls = jsonschema.validators.validator_for(document, jsonschema.Draft202012Validator)
            hit = (schema, cls(document))
            self._validators[id(schema)] = hit
        return hit[1]
