"""/api/webhooks: register, list, show, delete, rotate the secret; list deliveries
and retry one. Admins only (a Dispatcher or Contractor gets 403)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import url_for
from flask.views import MethodView

from application.webhooks import Webhooks, require_admin
from projections.webhooks.tables import Delivery, Endpoint
from web import http
from web.docs import ApiBlueprint
from web.services import services
from web.webhooks.schemas import (
    DeliveryListQuery,
    DeliverySchema,
    Revealed,
    WebhookCreateSchema,
    WebhookSchema,
    WebhookWithSecretSchema,
)

CREATE = WebhookCreateSchema()
LIST_QUERY = DeliveryListQuery()
WEBHOOK = WebhookSchema()
WEBHOOKS = WebhookSchema(many=True)
WITH_SECRET = WebhookWithSecretSchema()
DELIVERY = DeliverySchema()
DELIVERIES = DeliverySchema(many=True)
LOCATION = {"Location": {"description": "The endpoint's URL", "schema": {"type": "string"}}}

View = TypeVar("View", bound=Callable[..., Any])

blp = ApiBlueprint("webhooks", __name__, url_prefix="/api/webhooks",
                   description="Webhook endpoints (Admin): every published event, POSTed "
                               "and signed per Standard Webhooks v1, at least once.")


def admin_only(view: View) -> View:
    """Refuse (403) anyone but an Admin before the body is read."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin(http.actor())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def webhooks() -> Webhooks:
    found = services().webhooks
    assert found is not None, "the composition root builds the webhooks' service"
    return found


@blp.route("")
class WebhookEndpoints(MethodView):
    @admin_only
    @blp.arguments(CREATE)
    @blp.response(201, WITH_SECRET, headers=LOCATION)
    @blp.doc(operationId="createWebhook")
    @blp.problems(400, 401, 403, 415, 503)
    def post(self, body: dict[str, Any]) -> tuple[Revealed, int, dict[str, str]]:
        """Register an endpoint; its secret is in this answer only."""
        made = Revealed(*webhooks().register(http.actor(), **body))
        where = url_for("webhooks.WebhookEndpointById", endpoint_id=made.endpoint.id)
        return made, 201, {"Location": where}

    @admin_only
    @blp.response(200, WEBHOOKS)
    @blp.doc(operationId="listWebhooks")
    @blp.problems(401, 403)
    def get(self) -> list[Endpoint]:
        """Every endpoint, oldest first (never a secret)."""
        return webhooks().endpoints(http.actor())


@blp.route("/<endpoint_id>")
class WebhookEndpointById(MethodView):
    @admin_only
    @blp.response(200, WEBHOOK)
    @blp.doc(operationId="getWebhook")
    @blp.problems(401, 403, 404)
    def get(self, endpoint_id: str) -> Endpoint:
        """One endpoint."""
        return webhooks().endpoint(http.actor(), endpoint_id)

    @admin_only
    @blp.response(204)
    @blp.doc(operationId="deleteWebhook")
    @blp.problems(401, 403, 404)
    def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint: nothing more is sent to it."""
        webhooks().delete(http.actor(), endpoint_id)


@blp.route("/<endpoint_id>/rotate-secret")
class WebhookSecretRotation(MethodView):
    @admin_only
    @blp.response(200, WITH_SECRET)
    @blp.doc(operationId="rotateWebhookSecret")
    @blp.problems(400, 401, 403, 404, 415, 503)
    def post(self, endpoint_id: str) -> Revealed:
        """A new secret; the one before still signs (a second signature) for 24 h."""
        return Revealed(*webhooks().rotate_secret(http.actor(), endpoint_id))


@blp.route("/<endpoint_id>/deliveries")
class WebhookDeliveries(MethodView):
    @admin_only
    @blp.arguments(LIST_QUERY, location="query", as_kwargs=True)
    @blp.response(200, DELIVERIES)
    @blp.doc(operationId="listWebhookDeliveries")
    @blp.paginate(page=1, page_size=20, max_page_size=100)
    @blp.problems(401, 403, 404)
    def get(self, pagination_parameters: Any, endpoint_id: str,
            status: str | None = None) -> list[Delivery]:
        """The endpoint's deliveries, newest first, by status, paged."""
        page = webhooks().deliveries(http.actor(), endpoint_id, status=status,
                                     page=http.page_to_read(pagination_parameters.page),
                                     page_size=pagination_parameters.page_size)
        pagination_parameters.item_count = page.total
        return page.items


@blp.route("/<endpoint_id>/deliveries/<delivery_id>/retry")
class WebhookDeliveryRetry(MethodView):
    @admin_only
    @blp.response(202, DELIVERY)
    @blp.doc(operationId="retryWebhookDelivery")
    @blp.problems(400, 401, 403, 404, 409, 415)
    def post(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """Attempt a Failed or Dead delivery again now (409 when its endpoint is
        Disabled: nothing is sent to it)."""
        return webhooks().retry(http.actor(), endpoint_id, delivery_id)
