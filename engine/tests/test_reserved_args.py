"""The engine refuses the Ultralytics arguments that choose where files go,
even if a spec reaches it without the service's own check."""

import pytest

from trainyard_engine.train import RESERVED_TRAIN_ARGS, check_train_args


@pytest.mark.parametrize("key", ["save_dir", "project", "name", "exist_ok", "cfg", "model", "resume"])
def test_reserved_arguments_are_refused(key):
    assert key in RESERVED_TRAIN_ARGS
    with pytest.raises(ValueError, match=f"train.{key}: reserved"):
        check_train_args({"data": "/d.yaml", key: "/tmp/elsewhere"})


def test_ordinary_arguments_pass():
    check_train_args({"data": "/d.yaml", "epochs": 3, "imgsz": 64, "plots": False})
