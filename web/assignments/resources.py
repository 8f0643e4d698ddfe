"""/api/assignments: every assignment for staff, their own for a contractor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask.views import MethodView

from domain.errors import Forbidden
from web import http
from web.assignments.schemas import AssignmentListQuery, AssignmentSchema
from web.docs import ApiBlueprint

blp = ApiBlueprint("assignments", __name__, url_prefix="/api/assignments",
                   description="Assignments of contractors to jobs.")


@blp.route("")
class Assignments(MethodView):
    @blp.arguments(AssignmentListQuery, location="query", as_kwargs=True)
    @blp.response(200, AssignmentSchema(many=True))
    @blp.paginate(page=1, page_size=100, max_page_size=100)
    @blp.problems(401, 403)
    def get(self, pagination_parameters: Any, contractor_id: UUID | None = None,
            job_id: UUID | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """List assignments: any for Dispatcher and Admin, a Contractor's own only."""
        actor = http.actor()
        if not actor.is_staff:
            if not actor.is_contractor:
                raise Forbidden("Only staff and contractors may list assignments.")
            if contractor_id is not None and contractor_id != actor.contractor_id:
                raise Forbidden("A contractor may list only their own assignments.")
            contractor_id = actor.contractor_id
            if contractor_id is None:  # a contractor token whose sub is not an id
                pagination_parameters.item_count = 0
                return []
        page = http.caught_up_views().list_assignments(
            contractor_id=str(contractor_id) if contractor_id else None,
            job_id=str(job_id) if job_id else None, status=status,
            page=http.page_to_read(pagination_parameters.page),
            page_size=pagination_parameters.page_size)
        pagination_parameters.item_count = page.total
        return page.items
