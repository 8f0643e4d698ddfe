from uuid import uuid4

from tests.factories import job_fields, request, slot


def test_cancel_is_seen_by_the_read_models(services):
    app = services.app
    created = app.create_job(request(), **job_fields())
    app.assign(request(), created.job.id, contractor_id=uuid4(), **slot())

    cancelled = app.cancel_job(request(), created.job.id, reason="Customer called")

    assert services.views.wait_for(cancelled.position, timeout=5)
    assert services.views.get_job(str(created.job.id)).status == "Cancelled"
