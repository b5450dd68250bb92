"""The django-q2 schedule is wired: a real qcluster runs the tick, which processes a stored event."""

import base64
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The scheduler looks for due schedules about every 30 seconds; two rounds and start-up fit in this.
CLUSTER_TIMEOUT = 120


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.cluster
def test_qcluster_runs_tick_schedule(tmp_path):
    env = {**os.environ, "MKTAUTO_VAR_DIR": str(tmp_path), "MKTAUTO_Q_WORKERS": "1", "MKTAUTO_LOG_LEVEL": "INFO"}
    env.pop("DATABASE_URL", None)
    database = tmp_path / "mktauto.sqlite3"
    manage(env, "migrate", "--noinput", "-v0")
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(json.dumps({"id": "cluster-1", "type": "signed_up", "email": "cluster@example.com"}) + "\n")
    manage(env, "ingest_events", str(events_file))

    with sqlite3.connect(database) as connection:
        schedule = connection.execute("select func, schedule_type, minutes from django_q_schedule order by func").fetchall()
        pending = connection.execute("select count(*) from contacts_event where processed_at is null").fetchone()[0]
    assert schedule == [("workflows.tasks.run_score_decay", "D", None), ("workflows.tasks.run_tick", "I", 1)]
    assert pending == 1

    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        processed = 0
        while time.monotonic() < deadline and not processed:
            time.sleep(2)
            with sqlite3.connect(database) as connection:
                processed = connection.execute("select count(*) from contacts_event where processed_at is not null").fetchone()[0]
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            output, _ = cluster.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            output, _ = cluster.communicate()

    assert processed == 1, output[-3000:]
    with sqlite3.connect(database) as connection:
        task = connection.execute("select func, success, result from django_q_task where func = 'workflows.tasks.run_tick' order by started desc limit 1").fetchone()
    assert task[0] == "workflows.tasks.run_tick"
    assert task[1] == 1
    # django-q2 stores results pickled and base64-encoded.
    assert pickle.loads(base64.b64decode(task[2])) == "events=1 triggered=0 advanced=0 dispatched=0"
