"""Just enough GraphQL to simulate Shopify's Admin API honestly.

Parses documents with operations, variables, aliases, arguments, directives, inline
fragments and named fragments; validates every selection against a small schema
(unknown fields, missing required arguments, undeclared variables and unknown
directives are rejected the way a real server rejects them, with no ``data``); then
executes with plain-Python resolvers. Not supported: subscriptions, ``@skip``/
``@include``, input type checking beyond presence. Sandbox use only.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field


class GraphQLError(Exception):
    """An error as GraphQL reports it: message, location, path and extensions."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 path: list | None = None, extensions: dict | None = None):
        super().__init__(message)
        self.line, self.column, self.path, self.extensions = line, column, path, extensions

    def as_dict(self) -> dict:
        out: dict = {"message": str(self)}
        if self.line is not None:
            out["locations"] = [{"line": self.line, "column": self.column}]
        if self.path is not None:
            out["path"] = self.path
        if self.extensions:
            out["extensions"] = self.extensions
        return out


class Enum(str):
    """An enum literal (unquoted name) as opposed to a string."""


@dataclass(frozen=True)
class Var:
    name: str


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict
    directives: dict
    selections: list | None
    line: int
    column: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class InlineFragment:
    type_condition: str | None
    selections: list


@dataclass
class FragmentSpread:
    name: str
    line: int
    column: int


@dataclass
class Operation:
    kind: str
    name: str | None
    variables: dict  # name -> (type string, non_null, default)
    selections: list


@dataclass
class FieldDef:
    """A schema field: ``type`` names an object type, or is ``None`` for a scalar."""

    type: str | None = None
    required: tuple = ()
    optional: tuple = ()
    resolve: Callable | None = None  # (parent, args, ctx, field) -> value
    # A connection (``first``/``last`` paged): Shopify's calculated cost is 2 plus ``first``
    # times the cost of one node's selection, not 1 (shopify.dev "calculated query cost").
    connection: bool = False


@dataclass
class Schema:
    types: dict[str, dict[str, FieldDef]]
    query: str = "QueryRoot"
    mutation: str = "Mutation"
    interfaces: dict[str, set[str]] = field(default_factory=dict)
    directives: dict[str, tuple] = field(default_factory=dict)  # name -> required args
    mutation_cost: int = 10


_TOKEN = re.compile(r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$():=@\[\]{}|])
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    out, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise GraphQLError(f"Parse error on \"{text[pos]}\"", line=line, column=pos - line_start + 1)
        kind = match.lastgroup
        if kind != "skip":
            out.append((kind, match.group(), line, pos - line_start + 1))
        for i, ch in enumerate(match.group()):
            if ch == "\n":
                line, line_start = line + 1, match.start() + i + 1
        pos = match.end()
    out.append(("eof", "", line, pos - line_start + 1))
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        k, v, _, _ = self.toks[self.i]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value: str | None = None, kind: str | None = None) -> tuple:
        tok = self.toks[self.i]
        if not self.peek(value, kind):
            shown = tok[1] or "end of document"
            raise GraphQLError(f"Parse error on \"{shown}\"", line=tok[2], column=tok[3],
                               extensions={"code": "parseError"})
        self.i += 1
        return tok

    def document(self) -> tuple[list[Operation], dict]:
        operations, fragments = [], {}
        while not self.peek(kind="eof"):
            if self.peek("{"):
                operations.append(Operation("query", None, {}, self.selection_set()))
            elif self.peek("fragment"):
                self.take()
                name = self.take(kind="name")[1]
                self.take("on")
                type_name = self.take(kind="name")[1]
                fragments[name] = InlineFragment(type_name, self.selection_set())
            else:
                kind = self.take(kind="name")[1]
                if kind not in ("query", "mutation"):
                    raise GraphQLError(f"Unsupported operation {kind!r}",
                                       extensions={"code": "parseError"})
                name = self.take(kind="name")[1] if self.peek(kind="name") else None
                variables = self.variable_defs() if self.peek("(") else {}
                self.directives()
                operations.append(Operation(kind, name, variables, self.selection_set()))
        return operations, fragments

    def variable_defs(self) -> dict:
        self.take("(")
        out = {}
        while not self.peek(")"):
            self.take("$")
            name = self.take(kind="name")[1]
            self.take(":")
            type_text, non_null = self.type_ref()
            default = None
            if self.peek("="):
                self.take()
                default = self.value(const=True)
            out[name] = (type_text, non_null, default)
        self.take(")")
        return out

    def type_ref(self) -> tuple[str, bool]:
        if self.peek("["):
            self.take()
            inner, inner_nn = self.type_ref()
            self.take("]")
            text = f"[{inner}{'!' if inner_nn else ''}]"
        else:
            text = self.take(kind="name")[1]
        non_null = self.peek("!")
        if non_null:
            self.take()
        return text, non_null

    def selection_set(self) -> list:
        self.take("{")
        out = []
        while not self.peek("}"):
            out.append(self.selection())
        self.take("}")
        return out

    def selection(self):
        if self.peek("..."):
            _, _, line, column = self.take()
            if self.peek("on"):
                self.take()
                type_name = self.take(kind="name")[1]
                self.directives()
                return InlineFragment(type_name, self.selection_set())
            if self.peek("{"):
                return InlineFragment(None, self.selection_set())
            return FragmentSpread(self.take(kind="name")[1], line, column)
        _, name, line, column = self.take(kind="name")
        alias = None
        if self.peek(":"):
            self.take()
            alias, name = name, self.take(kind="name")[1]
        args = self.arguments() if self.peek("(") else {}
        directives = self.directives()
        selections = self.selection_set() if self.peek("{") else None
        return Field(name, alias, args, directives, selections, line, column)

    def arguments(self, const: bool = False) -> dict:
        self.take("(")
        out = {}
        while not self.peek(")"):
            name = self.take(kind="name")[1]
            self.take(":")
            out[name] = self.value(const)
        self.take(")")
        return out

    def directives(self) -> dict:
        out = {}
        while self.peek("@"):
            self.take()
            name = self.take(kind="name")[1]
            out[name] = self.arguments() if self.peek("(") else {}
        return out

    def value(self, const: bool = False):
        kind, text, line, column = self.toks[self.i]
        if text == "$" and not const:
            self.take()
            return Var(self.take(kind="name")[1])
        if text == "[":
            self.take()
            items = []
            while not self.peek("]"):
                items.append(self.value(const))
            self.take("]")
            return items
        if text == "{":
            self.take()
            obj = {}
            while not self.peek("}"):
                key = self.take(kind="name")[1]
                self.take(":")
                obj[key] = self.value(const)
            self.take("}")
            return obj
        self.take()
        if kind == "string":
            return _unquote(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, Enum(text))
        raise GraphQLError(f"Parse error on \"{text}\"", line=line, column=column,
                           extensions={"code": "parseError"})


def _unquote(text: str) -> str:
    return json.loads(text)


def _substitute(value, variables: dict):
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def _used_vars(value, out: set) -> None:
    if isinstance(value, Var):
        out.add(value.name)
    elif isinstance(value, list):
        for v in value:
            _used_vars(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _used_vars(v, out)


class _Validator:
    """Static checks of one operation; also sums the requested cost."""

    def __init__(self, schema: Schema, operation: Operation, fragments: dict, variables: dict | None = None):
        self.schema, self.op, self.fragments = schema, operation, fragments
        self.variables = variables or {}
        self.errors: list[GraphQLError] = []
        self.used: set[str] = set()
        self.cost = 0

    def run(self) -> None:
        root = self.schema.mutation if self.op.kind == "mutation" else self.schema.query
        self.walk(root, self.op.selections, top=True, seen=())
        for name in sorted(self.used - set(self.op.variables)):
            self.errors.append(GraphQLError(f"Variable ${name} is used by {self.op.name or 'anonymous'} "
                                            "but not declared",
                                            extensions={"code": "variableNotDefined", "variableName": name}))

    def walk(self, type_name: str, selections: list, *, top: bool = False, seen: tuple) -> None:
        for sel in selections:
            if isinstance(sel, FragmentSpread):
                frag = self.fragments.get(sel.name)
                if frag is None or sel.name in seen:
                    self.errors.append(GraphQLError(f"Fragment {sel.name} was used, but not defined",
                                                    line=sel.line, column=sel.column))
                else:
                    self.walk_fragment(type_name, frag, top, seen + (sel.name,))
            elif isinstance(sel, InlineFragment):
                self.walk_fragment(type_name, sel, top, seen)
            else:
                self.field(type_name, sel, top, seen)

    def walk_fragment(self, type_name: str, frag: InlineFragment, top: bool, seen: tuple) -> None:
        target = frag.type_condition or type_name
        possible = self.schema.interfaces.get(type_name, {type_name})
        if target != type_name and target not in possible or target not in self.schema.types:
            self.errors.append(GraphQLError(
                f"Fragment on {target} can't be spread inside {type_name}",
                extensions={"code": "cannotSpreadFragment"}))
            return
        self.walk(target, frag.selections, top=top, seen=seen)

    def field(self, type_name: str, sel: Field, top: bool, seen: tuple) -> None:
        where = {"line": sel.line, "column": sel.column}
        if sel.name == "__typename":
            return
        definition = self.schema.types.get(type_name, {}).get(sel.name)
        if definition is None:
            self.errors.append(GraphQLError(
                f"Field '{sel.name}' doesn't exist on type '{type_name}'", **where,
                extensions={"code": "undefinedField", "typeName": type_name, "fieldName": sel.name}))
            return
        for arg in definition.required:
            if arg not in sel.args:
                self.errors.append(GraphQLError(
                    f"Field '{sel.name}' is missing required arguments: {arg}", **where,
                    extensions={"code": "missingRequiredArguments", "arguments": arg}))
        for arg, value in sel.args.items():
            if arg not in definition.required and arg not in definition.optional:
                self.errors.append(GraphQLError(
                    f"Field '{sel.name}' doesn't accept argument '{arg}'", **where,
                    extensions={"code": "argumentNotAccepted", "name": sel.name, "argumentName": arg}))
            _used_vars(value, self.used)
        for name, args in sel.directives.items():
            if name not in self.schema.directives or not (top and self.op.kind == "mutation"):
                self.errors.append(GraphQLError(f"Directive @{name} is not defined or not allowed here",
                                                **where, extensions={"code": "undefinedDirective"}))
                continue
            for arg in self.schema.directives[name]:
                if arg not in args:
                    self.errors.append(GraphQLError(f"Directive '@{name}' is missing required "
                                                    f"arguments: {arg}", **where))
            _used_vars(args, self.used)
        if definition.type is None:
            if sel.selections is not None:
                self.errors.append(GraphQLError(
                    f"Selections can't be made on scalars (field '{sel.name}')", **where))
            return
        if sel.selections is None:
            self.errors.append(GraphQLError(
                f"Field must have selections (field '{sel.name}' returns {definition.type} "
                "but has no selections)", **where))
            return
        if definition.connection:
            size = _substitute(sel.args.get("first", sel.args.get("last")), self.variables)
            outer, self.cost = self.cost, 0
            self.walk(definition.type, sel.selections, seen=seen)
            per_page = self.cost
            self.cost = outer + 2 + (size if isinstance(size, int) and size > 0 else 1) * per_page
            return
        self.cost += self.schema.mutation_cost if top and self.op.kind == "mutation" else 1
        self.walk(definition.type, sel.selections, seen=seen)


@dataclass
class Prepared:
    """A parsed, validated request ready to execute (``cost`` = requested query cost)."""

    schema: Schema
    operation: Operation
    fragments: dict
    variables: dict
    cost: int


def prepare(schema: Schema, text: str, variables: dict | None,
            operation_name: str | None = None) -> Prepared:
    """Parse and validate; raises a list of errors as ``ValidationFailed``."""
    try:
        operations, fragments = _Parser(text or "").document()
    except GraphQLError as exc:
        raise ValidationFailed([exc]) from None
    if operation_name:
        operations = [o for o in operations if o.name == operation_name]
    if len(operations) != 1:
        raise ValidationFailed([GraphQLError("An operation name is required" if operations
                                             else "No operations in query document")])
    operation = operations[0]
    values = dict(variables or {})
    for name, (_type_text, _non_null, default) in operation.variables.items():
        if name not in values and default is not None:
            values[name] = default
    validator = _Validator(schema, operation, fragments, values)
    validator.run()
    for name, (type_text, non_null, _default) in operation.variables.items():
        if non_null and values.get(name) is None:
            validator.errors.append(GraphQLError(
                f"Variable ${name} of type {type_text}! was provided invalid value",
                extensions={"code": "INVALID_VARIABLE", "value": None,
                            "problems": [{"path": [], "explanation": "Expected value to not be null"}]}))
    if validator.errors:
        raise ValidationFailed(validator.errors)
    return Prepared(schema, operation, fragments, values, validator.cost)


class ValidationFailed(Exception):
    def __init__(self, errors: list[GraphQLError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def execute(prepared: Prepared, ctx) -> dict:
    """Run a prepared request; resolvers may raise :class:`GraphQLError` for their field."""
    errors: list[dict] = []
    schema, op = prepared.schema, prepared.operation
    root_type = schema.mutation if op.kind == "mutation" else schema.query
    data = _resolve_object(prepared, root_type, None, op.selections, ctx, [], errors)
    out: dict = {"data": data}
    if errors:
        out["errors"] = errors
    return out


def _collect(prepared: Prepared, type_name: str, selections: list) -> list[Field]:
    fields: list[Field] = []
    for sel in selections:
        if isinstance(sel, Field):
            fields.append(sel)
            continue
        frag = prepared.fragments[sel.name] if isinstance(sel, FragmentSpread) else sel
        if frag.type_condition in (None, type_name) or \
                type_name in prepared.schema.interfaces.get(frag.type_condition, ()):
            fields.extend(_collect(prepared, type_name, frag.selections))
    return fields


def _resolve_object(prepared: Prepared, type_name: str, parent, selections: list, ctx,
                    path: list, errors: list) -> dict:
    schema = prepared.schema
    if type_name in schema.interfaces and isinstance(parent, dict):
        type_name = parent.get("__typename", type_name)
    out: dict = {}
    for sel in _collect(prepared, type_name, selections):
        here = path + [sel.key]
        if sel.name == "__typename":
            out[sel.key] = type_name
            continue
        definition = schema.types[type_name][sel.name]
        args = _substitute(sel.args, prepared.variables)
        directives = _substitute(sel.directives, prepared.variables)
        try:
            if definition.resolve is not None:
                value = definition.resolve(parent, args, ctx, directives)
            else:
                value = parent.get(sel.name) if isinstance(parent, dict) else None
        except GraphQLError as exc:
            exc.path = here
            errors.append(exc.as_dict())
            out[sel.key] = None
            continue
        out[sel.key] = _complete(prepared, definition.type, value, sel, ctx, here, errors)
    return out


def _complete(prepared: Prepared, type_name, value, sel: Field, ctx, path: list, errors: list):
    if value is None or type_name is None:
        return value
    if isinstance(value, list):
        return [_complete(prepared, type_name, v, sel, ctx, path + [i], errors)
                for i, v in enumerate(value)]
    return _resolve_object(prepared, type_name, value, sel.selections, ctx, path, errors)
