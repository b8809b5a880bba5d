"""The WSGI entry point gunicorn serves: `gunicorn api.wsgi:app`."""

import logging

from api.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
