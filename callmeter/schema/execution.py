"""The GraphQL executor: graphql-core's, with a short way through plain leaf fields.

Most of a page of calls is plain leaf fields (`callSid`, `status`, `costUsd`: an attribute of the
object, a scalar or an enum). graphql-core resolves each through the whole machinery: a path and a
`ResolveInfo` built, Strawberry's resolver wrapper called, the result checked for being awaitable,
then completed. A field Strawberry itself calls basic (no resolver, no field extension: its value
is the attribute) whose type is a scalar or an enum is, here, read and coerced in one loop over
the object's selection; the object's other fields (resolvers, objects, lists) go through
graphql-core as before and the two are put back in the selection's order. When a plain field's
value needs more than that (a null in a non-null field, a value its scalar refuses), or a
middleware wraps resolvers (a schema extension's `resolve` hook), the whole object takes
graphql-core's own path, which reports the error where it happened: answers and errors are
unchanged. ~500 of the ~600 fields of `calls(first: 50)` are plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


@dataclass(frozen=True, slots=True)
class _Plain:
    name: str  # the response key (an alias or the field's name)
    attribute: str  # what Strawberry's resolver of a basic field reads
    leaf: GraphQLLeafType
    required: bool  # non-null


@dataclass(frozen=True, slots=True)
class _Plan:
    plain: tuple[_Plain, ...]
    rest: dict[str, Any] | None  # the other fields' part of the grouped field set, or None
    order: tuple[str, ...]  # every response key, in the selection's order


def _attribute(field: GraphQLField) -> str | None:
    """The attribute a plain leaf field's value is, or None if it is not one."""
    definition = field.extensions.get("strawberry-definition")
    if (
        getattr(field.resolve, "_is_default", False)  # Strawberry's basic field: no resolver, no extension
        and getattr(definition, "default_resolver", None) is getattr  # the schema's default resolver
        and is_leaf_type(get_nullable_type(field.type))  # type: ignore[arg-type]
    ):
        return definition.python_name  # type: ignore[union-attr]
    return None


def _plan(parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any], schema: Any) -> _Plan:
    plain, rest = [], {}
    for name, field_details_list in grouped_field_set.items():
        field = schema.get_field(parent_type, field_details_list[0].node.name.value)
        attribute = _attribute(field) if field is not None else None
        if attribute is None:
            rest[name] = field_details_list
        else:
            leaf = get_nullable_type(field.type)
            plain.append(_Plain(name, attribute, leaf, is_non_null_type(field.type)))  # type: ignore[arg-type]
    return _Plan(tuple(plain), rest or None, tuple(grouped_field_set))


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry passes a manager on every request, empty unless an extension has `resolve`.
        manager = self.middleware_manager
        self._unwrapped = manager is None or not manager.middlewares
        # id(grouped field set) -> (the set, kept alive so the id is not reused; its plan). graphql-core
        # collects an object type's selection once per execution, so a list's items share one.
        self._plans: dict[int, tuple[Any, _Plan]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if not self._unwrapped:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        cached = self._plans.get(id(grouped_field_set))
        if cached is None:
            cached = self._plans[id(grouped_field_set)] = (
                grouped_field_set,
                _plan(parent_type, grouped_field_set, self.schema),
            )
        plan = cached[1]
        if not plan.plain:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        values = _plain_values(plan.plain, source_value)
        if values is None:  # graphql-core's path reports what went wrong, where
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        if plan.rest is None:
            return values
        rest = super().execute_fields(parent_type, source_value, path, plan.rest, position_context)
        if self.is_awaitable(rest):

            async def merged() -> dict[str, Any]:
                return _in_order(plan.order, values, await rest)

            return merged()
        return _in_order(plan.order, values, rest)


def _plain_values(plain: tuple[_Plain, ...], source: Any) -> dict[str, Any] | None:
    values = {}
    for field in plain:
        value = getattr(source, field.attribute)
        if value is None:
            if field.required:
                return None
            values[field.name] = None
            continue
        try:
            coerced = field.leaf.coerce_output_value(value)
        except Exception:
            return None
        if coerced is None or coerced is Undefined:
            return None
        values[field.name] = coerced
    return values


def _in_order(order: tuple[str, ...], values: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    values.update(rest)
    return {name: values[name] for name in order if name in values}
