"""gunicorn settings for the web process (docker-compose.yml and make stack)."""

import os

bind = "0.0.0.0:8000"
# A starting point for a 2-core container; tune by measured latency and CPU.
workers = 3
# Seconds a request may run before its worker is restarted.
timeout = 30
# Worker heartbeat files on the in-memory /dev/shm, because a container's
# overlay filesystem can stall the heartbeat and get healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
# gunicorn 27's control socket would go under the home folder, which the
# image's non-root user cannot write; nothing here uses the socket.
control_socket_disable = True


def child_exit(server, worker):
    """Tell prometheus_client that a worker exited, so its live gauges leave the sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
