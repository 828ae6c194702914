"""The factory's jobs on Celery workers (``[executor] kind = "celery"``).

The job model stays the one of factory/jobs.py (a JobSpec keyed by its inputs' digest, rows in
the state database); only where a job runs changes. The control plane (``nanodistro factory
run``) claims jobs, prepares a payload per job (no keys, no credentials, no state URL), sends
one Celery task per attempt to the job's architecture queue, and accepts each sealed output at
most once: it verifies, signs and publishes (factory/remote). Workers (``nanodistro worker``)
import only the worker half: app.py and task.py here, plus the worker functions.

Modules: app.py (the Celery app: broker, queues, reliability settings), task.py (the one task a
worker runs), executor.py (CeleryExecutor, LocalExecutor's interface), status.py (``factory
status``), noop.py (a trivial job kind for tests and the bench).
"""

from __future__ import annotations
