"""Statements compiled once, for the paths that run on every callback.

`databases` compiles each Core statement on every call; on the callback path that compilation (and
building the statement objects) was half the service's CPU (bench/README.md, "Callback ingest"). A
`Prepared` statement is built once at import with named `bindparam`s, compiled once per dialect, and
run on the driver's own connection, inside the caller's `databases` transaction, with only the
column types' bind processors applied. asyncpg then also reuses its server-side prepared statement.

Rows come back as the driver gives them (asyncpg `Record`s; `dict`s on SQLite), keyed by column name,
without result processing: callers convert with `types.to_utc` / `types.to_decimal` as they already
do for both drivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.sql import ClauseElement

if TYPE_CHECKING:
    from callmeter.db.connection import Connection


@dataclass(frozen=True)
class _Compiled:
    sql: str
    sqlite: bool
    names: tuple[str, ...]  # the bind parameters, in positional order
    defaults: Mapping[str, Any]  # values bound in the statement itself
    required: frozenset[str]
    processors: Mapping[str, Any]


class Prepared:
    """`columns`: for an INSERT or UPDATE, the columns it sets, each bound by its own name."""

    def __init__(self, statement: ClauseElement, *, columns: tuple[str, ...] | None = None) -> None:
        self.statement = statement
        self.columns = columns
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, conn: Connection) -> _Compiled:
        dialect = conn._backend._dialect  # type: ignore[attr-defined]
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile_for(dialect)
        return compiled

    def _compile_for(self, dialect: Any) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
        if compiled.positiontup:  # qmark (SQLite): the order is the compiler's
            names, sql = tuple(compiled.positiontup), compiled.string
        else:  # pyformat (PostgreSQL through `databases`): number the names as asyncpg wants
            names = tuple(sorted(compiled.params))
            sql = compiled.string % {name: f"${i}" for i, name in enumerate(names, start=1)}
        return _Compiled(
            sql=sql,
            sqlite=dialect.name == "sqlite",
            names=names,
            defaults={name: value for name, value in compiled.params.items() if value is not None},
            required=frozenset(name for name, bind in compiled.binds.items() if bind.required),
            processors=dict(compiled._bind_processors),
        )

    def _args(self, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        missing = compiled.required - params.keys()
        if missing:
            raise TypeError(f"missing bind parameters: {', '.join(sorted(missing))}")
        args = []
        for name in compiled.names:
            value = params[name] if name in params else compiled.defaults.get(name)
            processor = compiled.processors.get(name)
            args.append(processor(value) if processor is not None else value)
        return args

    async def fetch_all(self, conn: Connection, **params: Any) -> list[Mapping[str, Any]]:
        compiled = self._compile(conn)
        args = self._args(compiled, params)
        raw = conn.raw_connection
        if compiled.sqlite:
            async with raw.execute(compiled.sql, args) as cursor:
                names = [column[0] for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
        return await raw.fetch(compiled.sql, *args)

    async def fetch_one(self, conn: Connection, **params: Any) -> Mapping[str, Any] | None:
        rows = await self.fetch_all(conn, **params)
        return rows[0] if rows else None

    async def fetch_val(self, conn: Connection, **params: Any) -> Any:
        row = await self.fetch_one(conn, **params)
        return None if row is None else next(iter(row.values()))

    async def execute_many(self, conn: Connection, rows: list[Mapping[str, Any]]) -> None:
        """The statement once per row, in one round trip on PostgreSQL (asyncpg pipelines it)."""
        if not rows:
            return
        compiled = self._compile(conn)
        args = [self._args(compiled, row) for row in rows]
        await conn.raw_connection.executemany(compiled.sql, args)  # aiosqlite and asyncpg alike

    async def execute(self, conn: Connection, **params: Any) -> None:
        compiled = self._compile(conn)
        args = self._args(compiled, params)
        raw = conn.raw_connection
        if compiled.sqlite:
            async with raw.execute(compiled.sql, args):
                return
        await raw.execute(compiled.sql, *args)


class UnnestInsert:
    """PostgreSQL: many rows in one INSERT, each column bound as one typed array (`columns`: name
    and SQL type); rows already stored (`conflict`: the unique columns) are skipped."""

    def __init__(self, table: str, columns: tuple[tuple[str, str], ...], *, conflict: str, returning: str):
        self.names = tuple(name for name, _ in columns)
        arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
        self.statement = Prepared(
            text(
                f"INSERT INTO {table} ({', '.join(self.names)}) SELECT * FROM unnest({arrays})"
                f" ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
            )
        )

    async def insert(self, conn: Connection, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Insert `rows` (keyed by the columns); the rows stored now, as `returning` says."""
        if not rows:
            return []
        return await self.statement.fetch_all(
            conn, **{name: [row[name] for row in rows] for name in self.names}
        )
