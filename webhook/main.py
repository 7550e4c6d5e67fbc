"""App Engine entrypoint: `gunicorn -b :$PORT webhook.main:app`.

The configuration is read from the environment here, once; a missing or malformed variable
stops the process with a message naming it.
"""

from webhook.service.app import create_app

app = create_app()
