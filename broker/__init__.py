"""The message broker: Celery apps, the task name and priorities, publishing, and kombu's layout in Redis."""
