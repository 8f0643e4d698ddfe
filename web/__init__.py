"""The HTTP face of the service: flask-smorest blueprints over the Dispatch application.

Built by the composition root: `smartscheduler.bootstrap.create_app`.
"""
