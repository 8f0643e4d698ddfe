"""What the console's own endpoint accepts: the development sign-in request.

Loaded like the API's request bodies (`web.schemas.Strict`: unknown fields are
an error), and refused the same way: a 422 `validation_failed` problem with
the messages by field in `errors`.
"""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import ValidationError, fields, post_load, pre_load, validate, validates_schema

from domain.values import Role
from web.auth import DEFAULT_SUBS
from web.problems import Problem
from web.schemas import Strict, Trimmed

ROLES = [str(role) for role in DEFAULT_SUBS]  # Admin, Dispatcher, Contractor
CONTRACTOR = Role.CONTRACTOR


class SignInRequest(Strict):
    """`{"role": "Dispatcher" | "Admin" | "Contractor", "sub": "optional user id"}`;
    an empty or null `sub` means the role's default user id."""

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    sub = Trimmed(load_default=None, validate=[
        validate.Length(min=1, max=200, error="The user id must be 1 to 200 characters."),
        validate.ContainsNoneOf("\x00", error="The user id may not contain a NUL character."),
    ])

    @pre_load
    def _no_sub(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("sub") in ("", None):
            return {name: value for name, value in data.items() if name != "sub"}
        return data

    @validates_schema
    def _contractor_sub(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("role") == CONTRACTOR and data.get("sub") is not None:
            try:
                uuid.UUID(data["sub"])
            except ValueError:
                raise ValidationError("A contractor's user id is their contractor id, "
                                      "a UUID.", "sub") from None

    @post_load
    def _canonical(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["role"] == CONTRACTOR and data["sub"] is not None:
            data["sub"] = str(uuid.UUID(data["sub"]))
        return data


def load_sign_in(body: Any) -> dict[str, Any]:
    """The request's role and sub (None: the role's default), or a 422 problem."""
    try:
        loaded: dict[str, Any] = SignInRequest().load(body if body is not None else {})
    except ValidationError as error:
        raise Problem(422, "validation_failed", "Validation failed",
                      "The request has invalid or unknown fields; see errors.",
                      errors=error.normalized_messages()) from None
    return loaded
