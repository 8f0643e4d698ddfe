"""/api/webhooks: the webhook endpoints Admins manage, and their deliveries."""
