"""``POST /api/v1/authorize``: Ed25519-signed request in, stream bearer out (PROTOCOL.md s. 2)."""

from __future__ import annotations

from streamgate.auth.authorize import AuthorizeError, Authorizer
from streamgate.server.http import Handler, HttpRequest, HttpResponse, json_response

__all__ = ["authorize_endpoint"]


def authorize_endpoint(authorizer: Authorizer) -> Handler:
    """Return the route handler answering with ``{token, user_id}`` or ``{error_code, ...}``."""

    async def authorize(request: HttpRequest) -> HttpResponse:
        try:
            result = authorizer.authorize(request.body, request.client)
        except AuthorizeError as exc:
            headers = []
            if exc.retry_after is not None:
                headers.append(("retry-after", str(exc.retry_after)))
            body = {"error_code": exc.error_code, "error_message": exc.message}
            return json_response(exc.status, body, headers=headers)
        return json_response(200, {"token": result.token, "user_id": result.user_id})

    return authorize
