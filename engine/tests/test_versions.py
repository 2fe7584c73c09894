"""The `started` event names everything that computed a run: `yard lineage`
shows it and `yard rerun` warns when a rerun's differs."""

import trainyard_engine
from trainyard_engine.train import versions


def test_versions_name_the_interpreter_libraries_and_engine():
    found = versions()
    assert {"python", "torch", "ultralytics", "numpy", "cuda", "cudnn", "engine"} <= set(found)
    assert found["engine"] == trainyard_engine.__version__
    assert all(isinstance(value, str) for value in found.values())
    assert found["torch"] and found["ultralytics"] and found["python"]


def test_the_environment_is_written_beside_the_run(tmp_path):
    from trainyard_engine.train import write_environment

    write_environment(tmp_path)
    lines = (tmp_path / "environment.txt").read_text().splitlines()
    assert lines == sorted(lines, key=str.lower)
    assert any(line.lower().startswith("ultralytics==") for line in lines)
    assert any(line.lower().startswith("torch==") for line in lines)
