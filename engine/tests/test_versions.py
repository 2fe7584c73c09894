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

