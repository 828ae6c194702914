"""``[executor] kind``/``broker`` in nanodistro.toml, and ``nanodistro worker``'s refusals,
without any service running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from nanodistro.errors import ConfigError
from nanodistro.factory.workspace import load_workspace


def _workspace(tmp_path: Path, text: str) -> Path:
    (tmp_path / "nanodistro.toml").write_text(text)
    return tmp_path


def test_local_stays_the_default(tmp_path: Path) -> None:
    loaded = load_workspace(_workspace(tmp_path, ""))
    assert (loaded.executor_kind, loaded.broker) == ("local", None)


def test_celery_with_redis_rabbitmq_or_the_default_broker(tmp_path: Path) -> None:
    celery = load_workspace(_workspace(tmp_path, '[executor]\nkind = "celery"\n'))
    assert (celery.executor_kind, celery.broker) == ("celery", "redis://127.0.0.1:6379/0")
    url = "amqp://factory:s3cret@rabbit.example:5672/nanodistro"
    rabbit = load_workspace(
        _workspace(tmp_path, f'[executor]\nkind = "celery"\nbroker = "{url}"\nconcurrency = 8\n')
    )
    assert (rabbit.broker, rabbit.concurrency) == (url, 8)  # passed through untouched
    text = (
        '[executor]\nkind = "celery"\nbroker = "redis://10.0.0.5:6379/2"\n'
        '[state]\nurl = "postgresql+psycopg://factory@10.0.0.5/nanodistro"\n'
    )
    both = load_workspace(_workspace(tmp_path, text))
    assert both.state_url == "postgresql+psycopg://factory@10.0.0.5/nanodistro"
    assert both.repository_url is None  # workers on this host read out/packages by path
    served = load_workspace(
        _workspace(tmp_path, '[executor]\nrepository-url = "http://10.0.0.5:8080/"\n')
    )
    assert served.repository_url == "http://10.0.0.5:8080/"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('[executor]\nkind = "kubernetes"\n', "executor.kind", "expected one of local, celery"),
        ('[executor]\nkind = "celery"\nbroker = "http://x/"\n', "executor.broker", "redis://"),
        ("[executor]\nbroker = 6379\n", "executor.broker", "expected a broker URL"),
        ('[executor]\nqueue = "x86_64"\n', "executor.queue", "unknown key"),
        ('[executor]\nrepository-url = "/srv/packages"\n', "executor.repository-url", "http(s)"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, text: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_workspace(_workspace(tmp_path, text))
    assert raised.value.field == field
    assert message in str(raised.value)


def test_worker_refuses_a_token_others_can_read_and_a_bad_broker(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a" * 64)
    token.chmod(0o644)
    shared = run_cli(tmp_path, "worker", "--name", "w1", "--token-file", token)
    assert shared.returncode == 1
    assert shared.stderr.strip().startswith("error: ") and "chmod 600" in shared.stderr
    assert len(shared.stderr.strip().splitlines()) == 1
    token.chmod(0o600)
    token.write_text("not a token")
    bad = run_cli(tmp_path, "worker", "--name", "w1", "--token-file", token)
    assert bad.returncode == 1 and "64 hex digits" in bad.stderr
    token.write_text("a" * 64)
    broker = run_cli(tmp_path, "worker", "--name", "w1", "--token-file", token, "--broker", "x")
    assert broker.returncode == 1 and "--broker" in broker.stderr


def test_a_worker_imports_no_workspace_and_no_signing_code() -> None:
    """What ``nanodistro worker`` loads before it starts taking jobs: the task, the worker
    functions, the channel; not the workspace loader, the key loader or the repository
    writer."""
    code = (
        "import sys\n"
        "import nanodistro.cli.worker, nanodistro.factory.distributed.task\n"
        "import nanodistro.factory.distributed.noop, nanodistro.factory.remote\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    for module in (
        "nanodistro.factory.workspace",
        "nanodistro.trust.keys",
        "nanodistro.repo.repository",
        "nanodistro.factory.cycle",
    ):
        assert module not in loaded, module


def test_a_task_whose_key_would_leave_the_work_folder_is_refused(tmp_path: Path) -> None:
    """Anyone on the broker can queue a task; a key such as ``/tmp/...`` or ``../..`` would
    make (and fill, then remove) the job's folder outside the worker's work folder. The
    worker answers with a sealed error instead and runs nothing."""
    from nanodistro.factory.distributed import noop
    from nanodistro.factory.distributed.task import WorkerIdentity, execute

    noop.register()

    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work" / "w1"
    identity = WorkerIdentity("w1", "0" * 64, work, tmp_path / "cache")
    for key in (f"{outside}/", "../../outside/x"):
        answer = execute({"key": key, "kind": "noop", "payload": {"value": 1}}, identity)
        envelope = answer["sealed"]["output"]
        assert "expected a job key of 64 hex digits" in envelope["error"]
        assert "output" not in envelope
    assert list(outside.iterdir()) == [] and not work.exists()
    good = execute({"key": "a" * 64, "kind": "noop", "payload": {"value": 1}}, identity)
    assert good["sealed"]["output"]["output"] == {"echo": 1}


def test_the_noop_kind_sleeps_no_longer_than_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone on the broker can queue a task: a noop asking for a year's sleep (on a test
    worker) sleeps MAX_SLEEP at most; a sleep that is not a number is refused."""
    import time

    from nanodistro.factory.distributed import noop

    monkeypatch.setattr(noop, "MAX_SLEEP", 0.2)
    started = time.monotonic()
    assert noop.noop({"value": 1, "sleep": 365 * 24 * 3600}, None) == {"echo": 1}  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    for bad in ("1e9", float("nan"), None, True):
        with pytest.raises(ConfigError, match="expected a number of seconds"):
            noop.noop({"value": 1, "sleep": bad}, None)  # type: ignore[arg-type]
