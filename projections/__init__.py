"""The read side: the job and assignment read models, their runner and rebuild."""
