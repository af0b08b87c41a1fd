"""The GraphQL executor: graphql-core's, with a short way through plain fields.

Most of a page of calls is plain fields: an attribute of the object, read by Strawberry's default
resolver (`callSid`, `status`, `costUsd`, an edge's `node`, a connection's `edges`). graphql-core
resolves each through its whole machinery: a `ResolveInfo` built, Strawberry's resolver wrapper
called, the result checked for being awaitable, then completed through several layers. Here a
field Strawberry calls basic (no resolver, no field extension) is read with `getattr` in the
object's own loop: a scalar or an enum is coerced on the spot; an object, or a list of objects,
goes straight to the collection of its selection. Everything else (resolvers, abstract types,
lists of scalars, a field with a directive such as `@stream`) and anything unusual in a value (a
null where the type forbids one, a value its scalar refuses, a list that is not a list) takes
graphql-core's own `execute_field`, which reports the error where it happened. Errors raised while
completing a plain object are handled by graphql-core's `handle_field_error` as its own path
would. With a resolving middleware (a schema extension's `resolve` hook) every field takes
graphql-core's path. tests/test_execution.py compares answers and errors with graphql-core's.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

LEAF, OBJECT, LIST = "leaf", "object", "list"
_SLOW = object()  # a plain field that graphql-core's own path must take after all


@dataclass(frozen=True, slots=True)
class _Step:
    name: str  # the response key (an alias or the field's name)
    field_details_list: Any
    field: GraphQLField | None
    kind: str | None  # LEAF, OBJECT, LIST (of objects), or None: graphql-core's path
    required: bool = False  # non-null
    attribute: str = ""
    type: Any = None  # LEAF: the leaf type; OBJECT: the object type; LIST: the item's object type
    item_type: Any = None  # LIST: the item's type as declared (maybe non-null)


def _attribute(field: GraphQLField) -> str | None:
    """The attribute Strawberry's default resolver reads for the field, or None if it has a resolver."""
    definition = field.extensions.get("strawberry-definition")
    if (
        getattr(field.resolve, "_is_default", False)
        and getattr(definition, "default_resolver", None) is getattr
    ):
        return definition.python_name  # type: ignore[union-attr]
    return None


def _step(name: str, field_details_list: Any, field: GraphQLField | None) -> _Step:
    attribute = _attribute(field) if field is not None else None
    if attribute is None or any(details.node.directives for details in field_details_list):
        return _Step(name, field_details_list, field, None)
    named = get_nullable_type(field.type)  # type: ignore[union-attr]
    required = is_non_null_type(field.type)  # type: ignore[union-attr]
    if is_leaf_type(named):
        return _Step(name, field_details_list, field, LEAF, required, attribute, named)
    if is_object_type(named) and named.is_type_of is None:  # type: ignore[union-attr]
        return _Step(name, field_details_list, field, OBJECT, required, attribute, named)
    if is_list_type(named):
        item_type = named.of_type  # type: ignore[union-attr]
        item = get_nullable_type(item_type)
        if is_object_type(item) and item.is_type_of is None:  # type: ignore[union-attr]
            return _Step(name, field_details_list, field, LIST, required, attribute, item, item_type)
    return _Step(name, field_details_list, field, None)


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry passes a manager on every request, empty unless an extension has `resolve`.
        manager = self.middleware_manager
        self._unwrapped = manager is None or not manager.middlewares
        # id(grouped field set) -> (the set, kept alive so the id is not reused; its steps).
        # graphql-core collects an object type's selection once per execution, so a list's items
        # share one set.
        self._plans: dict[int, tuple[Any, tuple[_Step, ...]]] = {}

    def _steps(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> tuple[_Step, ...]:
        cached = self._plans.get(id(grouped_field_set))
        if cached is None:
            get_field = self.schema.get_field
            steps = tuple(
                _step(name, details, get_field(parent_type, details[0].node.name.value))
                for name, details in grouped_field_set.items()
            )
            cached = self._plans[id(grouped_field_set)] = (grouped_field_set, steps)
        return cached[1]

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
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for step in self._steps(parent_type, grouped_field_set):
                name = step.name
                result = (
                    self._plain(step, source_value, path, parent_type, position_context)
                    if step.kind is not None
                    else _SLOW
                )
                if result is _SLOW:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        step.field_details_list,
                        Path(path, name, parent_type.name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                results[name] = result
                if step.kind is not LEAF and is_awaitable(result):
                    awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:  # settled, as graphql-core does, so their errors are observed
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _plain(
        self,
        step: _Step,
        source: Any,
        path: Path | None,
        parent_type: GraphQLObjectType,
        position_context: Any,
    ) -> Any:
        """The plain field's completed value, or _SLOW when graphql-core's path must take it."""
        try:
            value = getattr(source, step.attribute)
        except Exception:  # graphql-core's path reports it as the field's error
            return _SLOW
        if value is None:
            return _SLOW if step.required else None
        if isinstance(value, Exception):  # graphql-core raises a value that is an exception
            return _SLOW
        if step.kind is LEAF:
            return _coerced(step.type, value)
        field_path = Path(path, step.name, parent_type.name)
        if step.kind is OBJECT:
            return self._complete_object(step, value, field_path, position_context)
        if _plain_list(step, value, self.is_awaitable):
            return self._complete_list(step, value, field_path, position_context)
        return _SLOW

    def _complete_object(self, step: _Step, value: Any, path: Path, position_context: Any) -> Any:
        try:
            completed = self.collect_and_execute_subfields(
                step.type, step.field_details_list, path, value, position_context
            )
        except Exception as error:
            self.handle_field_error(error, step.field.type, step.field_details_list, path)  # type: ignore[union-attr]
            return None
        if self.is_awaitable(completed):
            return self._awaited(completed, step.field.type, step, path)  # type: ignore[union-attr]
        return completed

    def _complete_list(self, step: _Step, items: list | tuple, path: Path, position_context: Any) -> Any:
        try:
            completed: list[Any] = []
            pending: list[int] = []
            for index, item in enumerate(items):
                if item is None:  # a nullable item (a null non-null item takes graphql-core's path)
                    completed.append(None)
                    continue
                item_path = path.add_key(index, None)
                try:
                    result = self.collect_and_execute_subfields(
                        step.type, step.field_details_list, item_path, item, position_context
                    )
                except Exception as error:
                    self.handle_field_error(error, step.item_type, step.field_details_list, item_path)
                    result = None
                if self.is_awaitable(result):
                    result = self._awaited(result, step.item_type, step, item_path)
                    pending.append(index)
                completed.append(result)
        except Exception as error:
            if pending:
                self.settle_in_background([completed[index] for index in pending])
            self.handle_field_error(error, step.field.type, step.field_details_list, path)  # type: ignore[union-attr]
            return None
        if not pending:
            return completed

        async def get_completed() -> list[Any]:
            awaited = await gather_with_cancel(*(completed[index] for index in pending))
            for index, result in zip(pending, awaited, strict=True):
                completed[index] = result
            return completed

        return self._awaited(get_completed(), step.field.type, step, path)  # type: ignore[union-attr]

    async def _awaited(self, completed: Awaitable[Any], return_type: Any, step: _Step, path: Any) -> Any:
        try:
            return await completed
        except Exception as error:
            self.handle_field_error(error, return_type, step.field_details_list, path)
            return None


def _coerced(leaf: GraphQLLeafType, value: Any) -> Any:
    """The leaf's output value, or _SLOW if graphql-core's path must report what is wrong with it."""
    try:
        coerced = leaf.coerce_output_value(value)
    except Exception:
        return _SLOW
    return _SLOW if coerced is None or coerced is Undefined else coerced


def _plain_list(step: _Step, value: Any, is_awaitable: Any) -> bool:
    """A list or tuple of objects whose items need nothing graphql-core's path alone does."""
    if type(value) not in (list, tuple):
        return False
    required = is_non_null_type(step.item_type)
    return not any((item is None and required) or is_awaitable(item) for item in value)
