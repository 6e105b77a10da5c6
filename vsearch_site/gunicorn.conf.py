"""gunicorn for `make serve`: one worker per core, four threads each (gthread).

gthread over sync, by measurement (docs/BENCHMARKS.md, vote path; `make load`, 2 workers, 16 voters, 2 shared cores):
194-222 votes/s against 62-81, and 3.5-3.7 ms of server CPU per vote against 4.7-5.7. Sync workers close the
connection after every response, so each vote paid a TCP connection in the kernel; gthread keeps it alive.

Prometheus: every worker counts in its own process, so the workers write their metrics into one folder
(PROMETHEUS_MULTIPROC_DIR, prometheus_client's multiprocess mode) and /metrics, answered by any worker, adds them up.
It is set here, before the app is loaded (preload_app: in the master, so the workers inherit it); files left by
processes that are gone are removed when gunicorn starts, and a worker that exits is marked dead (its live gauges
leave the sum; its counters stay, as Prometheus expects of counters).
"""

import multiprocessing
import os
from pathlib import Path

bind = os.environ.get("VSEARCH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("VSEARCH_WEB_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("VSEARCH_WEB_THREADS", "4"))  # 1: sync workers
worker_class = "gthread" if threads > 1 else "sync"
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 20000  # recycle workers now and then: guards against slow leaks in long runs
max_requests_jitter = 2000
accesslog = os.environ.get("VSEARCH_ACCESS_LOG") or None
errorlog = "-"
preload_app = True

_data_dir = Path(os.environ.get("VSEARCH_DATA_DIR") or Path(__file__).resolve().parent.parent / "var")
multiproc_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data_dir / "prometheus")))
multiproc_dir.mkdir(parents=True, exist_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def on_starting(server):
    """Drop the metric files of processes that no longer run (an earlier start); a Celery worker sharing the folder
    keeps its own."""
    for path in multiproc_dir.glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(multiproc_dir))
