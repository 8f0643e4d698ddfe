"""SmartScheduler: the composition root of the workers and the command line."""
