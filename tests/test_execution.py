"""The executor's short way through plain leaf fields answers exactly what graphql-core's own path
answers: data, its order, errors and their paths, with or without a resolving middleware."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import Enum

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from callmeter.schema.execution import Executor
from callmeter.schema.view import schema as callmeter_schema


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    size: int
    note: str | None
    colour: Colour
    price: Decimal

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    async def later(self) -> str:
        return self.name + "!"

    @strawberry.field
    def twin(self) -> Item | None:
        return (
            None
            if self.name.startswith("twin")
            else _item("twin-" + self.name, self.size, None, self.colour, self.price)
        )


def _item(name: str, size: int, note: str | None, colour: Colour, price: Decimal) -> Item:
    return Item(name=name, size=size, note=note, colour=colour, price=price)


def _items() -> list[Item]:
    return [
        _item("a", 1, "first", Colour.RED, Decimal("0.10")),
        _item("b", 2, None, Colour.BLUE, Decimal("2.50")),
        _item(None, 3, None, Colour.RED, Decimal("1")),  # type: ignore[arg-type]  # a null name: an error
        _item("d", "four", None, Colour.RED, Decimal("1")),  # type: ignore[arg-type]  # Int refuses it
        _item("e", 5, None, "green", Decimal("1")),  # type: ignore[arg-type]  # not a Colour
    ]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()

    @strawberry.field
    def nullable_items(self) -> list[Item | None]:
        return _items()


class Upper(SchemaExtension):
    def resolve(self, _next, root, info, *args, **kwargs):
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


QUERIES = [
    "{ items { name size note colour price } }",
    "{ nullableItems { name size note colour price } }",
    "{ nullableItems { shout size later name } }",
    "{ nullableItems { n: name again: name size, ...F, twin { name twin { name } } } }"
    " fragment F on Item { note colour }",
    "{ nullableItems { __typename name @skip(if: true) size @include(if: true) later } }",
    "{ nullableItems { price name ... on Item { name size } } }",
]


def _run(schema: strawberry.Schema, query: str) -> str:
    result = schema.execute_sync(query) if "later" not in query else None
    if result is None:
        import asyncio

        result = asyncio.run(schema.execute(query))
    errors = sorted(
        ({"message": error.message, "path": error.path} for error in result.errors or []), key=json.dumps
    )
    return json.dumps({"data": result.data, "errors": errors})  # key order kept: the response's order


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("extensions", [[], [Upper]], ids=["plain", "with a resolve hook"])
def test_answers_and_errors_are_graphql_cores(query, extensions):
    ours = strawberry.Schema(query=Query, extensions=extensions, execution_context_class=Executor)
    theirs = strawberry.Schema(
        query=Query, extensions=extensions, execution_context_class=StrawberryGraphQLCoreExecutionContext
    )
    assert _run(ours, query) == _run(theirs, query)


def test_the_cases_cover_values_nulls_and_refused_values():
    answer = json.loads(_run(strawberry.Schema(query=Query, execution_context_class=Executor), QUERIES[1]))
    assert answer["data"]["nullableItems"][:2] == [
        {"name": "a", "size": 1, "note": "first", "colour": "RED", "price": "0.10"},
        {"name": "b", "size": 2, "note": None, "colour": "BLUE", "price": "2.50"},
    ]
    assert answer["data"]["nullableItems"][2:] == [None, None, None]
    assert sorted(error["path"] for error in answer["errors"]) == [
        ["nullableItems", 2, "name"],
        ["nullableItems", 3, "size"],
        ["nullableItems", 4, "colour"],
    ]


def test_the_service_schema_uses_it():
    assert callmeter_schema.execution_context_class is Executor
