"""gunicorn for `make serve`: sync workers, a few per core (requests are short, the database does the waiting)."""

import multiprocessing
import os

bind = os.environ.get("VSEARCH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("VSEARCH_WEB_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("VSEARCH_WEB_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 20000  # recycle workers now and then: guards against slow leaks in long runs
max_requests_jitter = 2000
accesslog = os.environ.get("VSEARCH_ACCESS_LOG") or None
errorlog = "-"
preload_app = True
