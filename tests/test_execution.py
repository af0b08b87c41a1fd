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
    async def strict(self) -> str:
        if self.name == "b":
            raise ValueError("no b")
        return self.name

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
class Box:
    item: Item
    maybe: Item | None
    items: list[Item]
    loose: list[Item | None] | None

    holes: list[Item | None]  # a non-null list of nullable items
    firm: list[Item] | None  # a nullable list of non-null items


def _box(item: Item, maybe: Item | None, items: list[Item], loose: list[Item | None] | None) -> Box:
    firm = loose if isinstance(loose, list | tuple) else None
    return Box(item=item, maybe=maybe, items=items, loose=loose, holes=[*items, None], firm=firm)  # type: ignore[arg-type]


def _boxes() -> list[Box]:
    good, b = _item("a", 1, "x", Colour.RED, Decimal("1")), _item("b", 2, None, Colour.BLUE, Decimal("2"))
    no_name = _item(None, 3, None, Colour.RED, Decimal("1"))  # type: ignore[arg-type]
    return [
        _box(item=good, maybe=None, items=[good, b], loose=[good, None]),
        _box(item=no_name, maybe=good, items=[good], loose=None),
        _box(item=good, maybe=no_name, items=[good, no_name], loose=[no_name, good]),
        _box(item=b, maybe=good, items=(good, b), loose=(b,)),  # type: ignore[arg-type]
        _box(item=good, maybe=good, items=[good, None], loose="not a list"),  # type: ignore[arg-type, list-item]
        _box(item=good, maybe=ValueError("boom"), items=[], loose=[]),  # type: ignore[arg-type]
        _box(item=good, maybe=object(), items=[good], loose=[object()]),  # type: ignore[arg-type]  # no attributes
    ]


@strawberry.type
class Query:
    @strawberry.field
    def boxes(self) -> list[Box | None]:
        return _boxes()

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
    "{ boxes { item { name } maybe { name size } items { name } loose { name } } }",
    "{ boxes { item { name later } maybe { size later } items { later name } loose { later } } }",
    "{ boxes { item { strict } } }",
    "{ boxes { maybe { strict } loose { strict name } } }",
    "{ boxes { items { strict } } }",
    "{ boxes { loose { name twin { name } } items { twin { twin { size } } } } }",
    "{ boxes { holes { name strict } firm { name later } } }",
]


def _run(schema: strawberry.Schema, query: str) -> str:
    result = schema.execute_sync(query) if "later" not in query and "strict" not in query else None
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
