"""Limits on what one request may cost: GraphQL document shape and request body size.

GraphQL: depth 10, 30 aliases, 2,000 tokens, and at most 500 items a page (resolvers/calls.py);
parsing and validation are cached per distinct document (a bounded LRU), after the token limit.
Bodies: 64 KiB for Twilio's callbacks, 1 MiB for everything else, checked against the declared
Content-Length and again while streaming, so a chunked upload cannot get past it.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError, ValidationContext, ValidationRule
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
MAX_API_BODY_BYTES = 1024 * 1024
MAX_CALLBACK_BODY_BYTES = 64 * 1024
BODY_LIMITS = (("/webhooks/", MAX_CALLBACK_BODY_BYTES),)  # (path prefix, bytes); else the API's


def _tolerant(rule: type[ValidationRule]) -> type[ValidationRule]:
    """The depth rule computes in its constructor, which fails on an empty selection set (`{ }`, that
    graphql-core 3.3 parses): answer that with a validation error instead of an internal one."""

    class Tolerant(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            try:
                rule(context)
            except ValueError:
                context.report_error(GraphQLError("Selection sets must not be empty."))

    return Tolerant


# The rule classes are made once, so identical documents validate once (ValidationCache is keyed by
# the document and the rules): the dashboard sends the same few documents over and over.
_LIMIT_RULES = (
    *(_tolerant(rule) for rule in QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules),
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)
GRAPHQL_CACHE_SIZE = 256

GRAPHQL_LIMITS = [
    lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    lambda: ParserCache(maxsize=GRAPHQL_CACHE_SIZE),
    lambda: AddValidationRules(list(_LIMIT_RULES)),
    lambda: ValidationCache(maxsize=GRAPHQL_CACHE_SIZE),
]


class _TooLarge(Exception):
    pass


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), MAX_API_BODY_BYTES)


class BodySizeLimit:
    """ASGI middleware answering 413 to an HTTP request whose body is over its path's limit;
    `on_refused(path)` is told of each (the callback route counts them in its metrics)."""

    def __init__(self, app: ASGIApp, on_refused: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        if self.on_refused is not None:
            self.on_refused(scope["path"])
        response = PlainTextResponse(f"request body over {limit // 1024} KiB\n", status_code=413)
        await response(scope, receive, send)
