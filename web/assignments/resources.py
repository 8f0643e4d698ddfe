"""/api/assignments: every assignment for staff, their own for a contractor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask.views import MethodView

from projections.assignments import AssignmentRecord
from web import http
from web.assignments.schemas import AssignmentListQuery, AssignmentSchema
from web.docs import ApiBlueprint

ASSIGNMENTS = AssignmentSchema(many=True)
LIST_QUERY = AssignmentListQuery()

blp = ApiBlueprint("assignments", __name__, url_prefix="/api/assignments",
                   description="Assignments of contractors to jobs.")


@blp.route("")
class Assignments(MethodView):
    @blp.arguments(LIST_QUERY, location="query", as_kwargs=True)
    @blp.response(200, ASSIGNMENTS)
    @blp.paginate(page=1, page_size=100, max_page_size=100)
    @blp.problems(401, 403)
    def get(self, pagination_parameters: Any, contractor_id: UUID | None = None,
            job_id: UUID | None = None, status: str | None = None) -> list[AssignmentRecord]:
        """List assignments: any for Dispatcher and Admin, a Contractor's own only."""
        whose = http.actor().assignments_to_list(contractor_id)
        page = http.caught_up_views().list_assignments(
            contractor_id=None if whose is None else str(whose),
            job_id=None if job_id is None else str(job_id), status=status,
            page=http.page_to_read(pagination_parameters.page),
            page_size=pagination_parameters.page_size)
        pagination_parameters.item_count = page.total
        return page.items
