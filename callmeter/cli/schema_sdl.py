"""`callmeter schema`: the GraphQL schema as SDL, for graphql-codegen and other clients' tools."""

from __future__ import annotations

import click


@click.command("schema")
def schema() -> None:
    """Print the GraphQL schema (SDL). The repository keeps it as schema.graphql."""
    from callmeter.schema.view import schema as graphql_schema

    click.echo(graphql_schema.as_str())
