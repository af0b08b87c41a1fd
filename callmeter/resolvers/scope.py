"""Who may see what: every read is scoped to the viewer; only an admin may name another user."""

from __future__ import annotations

from callmeter.auth import Viewer
from callmeter.errors import ForbiddenError, UnauthenticatedError
from callmeter.inputs import parse_id


def require_viewer(viewer: Viewer | None, auth_error: str | None = None) -> Viewer:
    if viewer is None:
        raise UnauthenticatedError(auth_error or "missing Authorization: Bearer token")
    return viewer


def require_admin(viewer: Viewer) -> Viewer:
    if not viewer.is_admin:
        raise ForbiddenError("only an admin may do this")
    return viewer


def target_user(viewer: Viewer, user_id: object | None) -> int:
    """The user a request reads: the viewer's own, or for an admin the one it names."""
    if user_id is None or user_id == "":
        return viewer.user_id
    wanted = parse_id(user_id, "userId")
    if wanted != viewer.user_id and not viewer.is_admin:
        # Tenant isolation: a user may only ever read their own data.
        raise ForbiddenError("you may only see your own usage")
    return wanted
