"""An engine whose worker died while it started (kill -9 of `yard up` just
after a job was handed out) ends at once instead of training, as an orphan,
the run folder the job's next attempt resumes in."""

import ctypes
import json
import os
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def test_an_engine_whose_worker_died_before_it_started_exits_without_training(tmp_path):
    # Orphans are adopted by this test process (not init), so it can wait for them.
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"job_id": "orphan", "model": "yolov8n.yaml", "project": str(tmp_path / "runs"), "name": "orphan",
                                "train": {"data": str(tmp_path / "missing.yaml"), "epochs": 1}}))
    # The "worker": starts the engine naming itself, then dies at once, before the engine's Python is up.
    worker = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'trainyard_engine', 'train', '--spec', sys.argv[1],"
         " '--events-fd', '1', '--parent-pid', str(os.getpid())], stdout=open(sys.argv[2], 'w')); print(p.pid); os._exit(0)",
         str(spec), str(tmp_path / "events.jsonl")],
        capture_output=True, text=True, timeout=60, check=True)
    engine = int(worker.stdout.strip())
    deadline = time.monotonic() + 60
    while True:
        pid, status = os.waitpid(engine, os.WNOHANG)
        if pid == engine:
            break
        assert time.monotonic() < deadline, "the orphaned engine is still running"
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 137
    assert (tmp_path / "events.jsonl").read_text() == "", "it reported nothing: it never began the job"
    assert not (tmp_path / "runs").exists()


def test_an_engine_keeps_running_while_the_worker_it_names_is_its_parent(tmp_path):
    # The check is against the named pid: the engine's real parent names itself and the engine goes on to its job.
    answer = subprocess.run([sys.executable, "-m", "trainyard_engine", "train", "--spec", str(tmp_path / "nope.json"),
                             "--parent-pid", str(os.getpid())], capture_output=True, text=True, timeout=60)
    assert answer.returncode not in (0, 137), answer
    assert "nope.json" in answer.stderr
