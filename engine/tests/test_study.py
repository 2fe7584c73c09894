"""The study process against real Optuna (SQLite storage in a temp folder)."""

import io
import json

import pytest

from trainyard_engine.study import serve

SPACE = [
    {"name": "train.lr0", "kind": "loguniform", "args": [1e-5, 0.1]},
    {"name": "train.momentum", "kind": "uniform", "args": [0.6, 0.98]},
    {"name": "train.imgsz", "kind": "choice", "args": [320, 640]},
    {"name": "train.warmup_epochs", "kind": "range", "args": [0, 3, 0.5]},
    {"name": "train.batch", "kind": "int", "args": [8, 32]},
    {"name": "model", "kind": "choice", "args": ["yolov8n.yaml", "yolov8s.yaml"]},
]


def run(*requests):
    out = io.StringIO()
    lines = "".join(json.dumps({"id": i, **r}) + "\n" for i, r in enumerate(requests))
    serve(io.StringIO(lines), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [a["id"] for a in answers] == list(range(len(requests)))
    return answers


def opening(storage, **extra):
    return {"op": "open", "study": "s", "storage": storage, "direction": "maximize",
            "sampler": {"name": "RandomSampler", "seed": 3}, "pruner": {"name": "MedianPruner", "grace_period": 1}, "space": SPACE, **extra}


def test_every_kind_is_sampled_in_its_bounds_and_the_best_is_kept(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    requests = [opening(storage)]
    for n in range(4):
        requests += [{"op": "ask", "study": "s"}]
    answers = run(*requests)
    assert all(a["ok"] for a in answers), answers
    asked = answers[1:]
    assert [a["number"] for a in asked] == [0, 1, 2, 3]
    for a in asked:
        p = a["params"]
        assert 1e-5 <= p["train.lr0"] <= 0.1
        assert 0.6 <= p["train.momentum"] <= 0.98
        assert p["train.imgsz"] in (320, 640)
        assert p["train.warmup_epochs"] in (0, 0.5, 1, 1.5, 2, 2.5, 3)
        assert isinstance(p["train.batch"], int) and 8 <= p["train.batch"] <= 32
        assert p["model"] in ("yolov8n.yaml", "yolov8s.yaml")

    # A new process on the same storage: the asked trials are still running.
    told = run(opening(storage),
               {"op": "tell", "study": "s", "number": 0, "state": "complete", "value": 0.4},
               {"op": "tell", "study": "s", "number": 1, "state": "complete", "value": 0.7},
               {"op": "tell", "study": "s", "number": 2, "state": "fail"},
               {"op": "tell", "study": "s", "number": 3, "state": "pruned"},
               {"op": "tell", "study": "s", "number": 1, "state": "complete", "value": 0.1},
               {"op": "best", "study": "s"},
               {"op": "trials", "study": "s"})
    assert [t["state"] for t in told[0]["trials"]] == ["running"] * 4
    assert all(a["ok"] for a in told), told
    assert told[6]["best"] == {"number": 1, "value": 0.7, "params": asked[1]["params"]}, "told twice: the first one counts"
    assert [t["state"] for t in told[7]["trials"]] == ["complete", "complete", "fail", "pruned"]


def test_a_trial_far_below_the_median_is_pruned_after_the_grace_period(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    requests = [opening(storage, pruner={"name": "MedianPruner", "grace_period": 3, "startup_trials": 2})]
    for n in range(3):
        requests.append({"op": "ask", "study": "s"})
        for step in range(1, 5):
            requests.append({"op": "report", "study": "s", "number": n, "step": step, "value": 0.5 + 0.01 * step})
        requests.append({"op": "tell", "study": "s", "number": n, "state": "complete", "value": 0.55})
    requests.append({"op": "ask", "study": "s"})
    low = [{"op": "report", "study": "s", "number": 3, "step": step, "value": 0.01} for step in range(1, 5)]
    answers = run(*requests, *low)
    assert all(a["ok"] for a in answers), answers
    verdicts = [a["prune"] for a in answers[-4:]]
    assert verdicts[:2] == [False, False], "not pruned before 3 epochs (grace_period 3)"
    assert verdicts[2] is True, "pruned at its third epoch, far below the median"


def test_successive_halving_takes_optunas_reduction_factor_and_bootstrap_count(tmp_path):
    pruner = "SuccessiveHalvingPruner"
    def first_trial_at_its_first_rung(**settings):
        answers = run(opening(f"sqlite:///{tmp_path}/{pruner}-{len(settings)}.db", pruner={"name": pruner, "grace_period": 2, **settings}),
                      {"op": "ask", "study": "s"},
                      *[{"op": "report", "study": "s", "number": 0, "step": step, "value": 0.5} for step in (1, 2)])
        assert all(a["ok"] for a in answers), answers
        return [a["prune"] for a in answers[2:]]

    # Alone at the rung, a trial goes on; with bootstrap_count 1 it must wait for one more, so Optuna prunes it.
    assert first_trial_at_its_first_rung() == [False, False]
    assert first_trial_at_its_first_rung(reduction_factor=4, bootstrap_count=1) == [False, True]


def test_hyperband_takes_optunas_reduction_factor(tmp_path):
    from trainyard_engine.study import _pruner

    assert _pruner({"name": "HyperbandPruner", "grace_period": 2})._reduction_factor == 3, "Optuna's default"
    assert _pruner({"name": "HyperbandPruner", "grace_period": 2, "reduction_factor": 4})._reduction_factor == 4
    answers = run(opening(f"sqlite:///{tmp_path}/study.db", pruner={"name": "HyperbandPruner", "grace_period": 1, "reduction_factor": 4}))
    assert answers[0]["ok"], answers


def test_a_restarted_process_reports_to_a_trial_an_earlier_one_asked(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    first = run(opening(storage), {"op": "ask", "study": "s"}, {"op": "report", "study": "s", "number": 0, "step": 1, "value": 0.3})
    assert first[2] == {"id": 2, "ok": True, "prune": False}
    second = run(opening(storage), {"op": "report", "study": "s", "number": 0, "step": 2, "value": 0.35},
                 {"op": "report", "study": "s", "number": 0, "step": 2, "value": 0.35},
                 {"op": "tell", "study": "s", "number": 0, "state": "complete", "value": 0.36}, {"op": "trials", "study": "s"})
    assert all(a["ok"] for a in second), second
    assert second[4]["trials"][0]["intermediate"] == {"1": 0.3, "2": 0.35}
    assert second[4]["trials"][0]["state"] == "complete"


@pytest.mark.parametrize("sampler", ["TPESampler", "CmaEsSampler", "GridSampler", "QMCSampler"])
def test_each_sampler_asks(tmp_path, sampler):
    space = SPACE if sampler != "GridSampler" else [p for p in SPACE if p["kind"] in ("choice", "int", "range")]
    answers = run(opening(f"sqlite:///{tmp_path}/study.db", sampler={"name": sampler, "seed": 1}, space=space),
                  {"op": "ask", "study": "s"}, {"op": "ask", "study": "s"})
    assert all(a["ok"] for a in answers), answers
    assert set(answers[1]["params"]) == {p["name"] for p in space}


def test_every_bad_request_is_one_line_and_the_process_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    answers = run(
        {"op": "ask", "study": "nope"},
        {"op": "fly"},
        opening(storage, sampler={"name": "Bayes"}),
        opening(storage, sampler={"name": "GridSampler"}),
        opening(storage, space=[]),
        opening(storage),
        {"op": "report", "study": "s", "number": 9, "step": 1, "value": 0.1},
        {"op": "tell", "study": "s", "number": 0, "state": "maybe"},
        {"op": "report", "study": "s", "number": 0, "step": 1, "value": "NaN"},
        {"op": "best", "study": "s"},
    )
    errors = [a.get("error", "") for a in answers]
    assert "not open" in errors[0]
    assert "unknown op" in errors[1]
    assert "unknown sampler" in errors[2]
    assert "GridSampler needs finite values" in errors[3]
    assert "at least one parameter" in errors[4]
    assert answers[5]["ok"]
    assert "no trial 9" in errors[6]
    assert "no trial 0" in errors[7] or "maybe" in errors[7]
    assert "no trial 0" in errors[8] or answers[8].get("note")
    assert answers[9] == {"id": 9, "ok": True, "best": None}
    assert all("\n" not in e for e in errors)


def test_a_grid_used_up_is_told_without_an_error(tmp_path):
    space = [{"name": "train.lr0", "kind": "choice", "args": [0.1, 0.2]}]
    answers = run(opening(f"sqlite:///{tmp_path}/study.db", sampler={"name": "GridSampler", "seed": 1}, space=space),
                  {"op": "ask", "study": "s"}, {"op": "ask", "study": "s"},
                  {"op": "tell", "study": "s", "number": 0, "state": "complete", "value": 0.3},
                  {"op": "tell", "study": "s", "number": 1, "state": "complete", "value": 0.4},
                  {"op": "trials", "study": "s"})
    assert all(a["ok"] for a in answers), answers
    assert [t["state"] for t in answers[5]["trials"]] == ["complete", "complete"]


@pytest.mark.parametrize("sampler", ["RandomSampler", "TPESampler"])
def test_a_restarted_seeded_study_carries_on_instead_of_repeating_its_first_trials(tmp_path, sampler):
    """A server killed mid-sweep opens its study again: the seeded sampler must
    not hand out trial 0's values again as trial 3's, and the same seed with
    the same history still gives the same next trials."""
    def sweep(storage):
        ask = [{"op": "ask", "study": "s"}] * 3
        first = run(opening(storage, sampler={"name": sampler, "seed": 3}), *ask)
        again = run(opening(storage, sampler={"name": sampler, "seed": 3}), *ask)
        assert all(a["ok"] for a in first + again), first + again
        assert [a["number"] for a in again[1:]] == [3, 4, 5]
        return [a["params"] for a in first[1:]], [a["params"] for a in again[1:]]

    before, after = sweep(f"sqlite:///{tmp_path}/a.db")
    earlier = [p["train.lr0"] for p in before]
    for number, params in enumerate(after, start=3):
        assert params["train.lr0"] not in earlier, f"trial {number} repeats an earlier trial's lr0: {params} in {before}"
    assert sweep(f"sqlite:///{tmp_path}/b.db") == (before, after), "the same seed and history give the same trials"
