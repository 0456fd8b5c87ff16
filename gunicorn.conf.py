"""gunicorn settings for the web service (read by default from the working directory).

    .venv/bin/gunicorn 'referrals:create_app()'

Environment variables adjust it per host: BIND (default 127.0.0.1:8000, behind the TLS proxy),
WEB_CONCURRENCY (worker processes, default 2 per CPU plus 1), GUNICORN_THREADS (threads per
worker, default 1), GUNICORN_TIMEOUT (seconds, default 60). Scheduled work never runs here: the
scheduler is its own process (`referrals scheduler run`).
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Restart a worker now and then, so a slow leak never grows for ever.
max_requests = 2000
max_requests_jitter = 200
# JSON lines on stderr for both logs: the access log has the path but never the query string.
accesslog = "-"
errorlog = "-"
logger_class = "referrals.access_log.AccessLogger"
