"""The Celery side: the app, its queues and the thin tasks."""
