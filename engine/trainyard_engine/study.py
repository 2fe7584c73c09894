"""The study process of a sweep: Optuna behind one JSON line per request.

`python -m trainyard_engine study` reads requests on stdin and answers each
with one line on stdout, in order:

    {"id": 1, "op": "open", "study": "s", "storage": "sqlite:///x.db", "direction": "maximize",
     "sampler": {"name": "TPESampler", "seed": 7}, "pruner": {"name": "MedianPruner", "grace_period": 2, "startup_trials": 2},
     "space": [{"name": "train.lr0", "kind": "loguniform", "args": [1e-5, 0.1]}, ...]}
    {"id": 2, "op": "ask", "study": "s"}                      -> {"number": 0, "params": {"train.lr0": 0.003}}
    {"id": 3, "op": "report", "study": "s", "number": 0, "step": 3, "value": 0.41}  -> {"prune": false}
    {"id": 4, "op": "tell", "study": "s", "number": 0, "state": "complete", "value": 0.52}
    {"id": 5, "op": "trials", "study": "s"}                   -> {"trials": [{"number", "state", "params", "value", "intermediate"}]}
    {"id": 6, "op": "best", "study": "s"}                     -> {"best": {"number", "value", "params"} | null}

SuccessiveHalvingPruner and HyperbandPruner take "reduction_factor", and
SuccessiveHalvingPruner "bootstrap_count", beside "grace_period" (their first rung).
Answers are {"id": N, "ok": true, ...} or {"id": N, "ok": false, "error": "one line"}.
The study lives in Optuna's storage (an RDB URL, or `redis://` for its
journal storage), so a restarted process carries on where the last one
stopped: asked trials stay RUNNING and can still be reported and told.
Optuna does the sampling and pruning; this file only translates.
"""

import json
import math
import sys

SAMPLERS = ("TPESampler", "RandomSampler", "CmaEsSampler", "GridSampler", "QMCSampler")
PRUNERS = ("MedianPruner", "SuccessiveHalvingPruner", "HyperbandPruner", "none")


class StudyError(Exception):
    pass


def _storage(url):
    import optuna

    if url.startswith(("redis://", "rediss://")):
        from optuna.storages.journal import JournalRedisBackend

        return optuna.storages.JournalStorage(JournalRedisBackend(url))
    return url


def _grid(space):
    grid = {}
    for p in space:
        kind, args = p["kind"], p["args"]
        if kind == "choice":
            grid[p["name"]] = list(args)
        elif kind == "int":
            grid[p["name"]] = list(range(int(args[0]), int(args[1]) + 1))
        elif kind == "range":
            low, high, step = args
            count = int(math.floor((high - low) / step + 1e-9))
            grid[p["name"]] = [low + i * step for i in range(count + 1)]
        else:
            raise StudyError(f"{p['name']}: GridSampler needs finite values, not {kind}")
    return grid


def _seed(seed, done):
    """The sampler's seed in a study that already holds `done` trials.

    A seeded sampler starts its random sequence from the seed each time it is
    made, so a study opened again (a restarted server or study process) would
    hand out its first trials' values again. A new study takes the seed itself;
    one with trials takes a seed drawn from (seed, done): the same seed and the
    same history give the same next trial, and a restart does not repeat one.
    """
    if seed is None or done == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(done)]).generate_state(1)[0])


def _sampler(spec, space, done=0):
    import optuna

    name, given = spec.get("name", "TPESampler"), spec.get("seed")
    seed = _seed(given, done)
    if name == "TPESampler":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "RandomSampler":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "CmaEsSampler":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "GridSampler":
        return optuna.samplers.GridSampler(_grid(space), seed=seed)
    if name == "QMCSampler":
        # Its sequence keeps the given seed (it finds its place in it from the study);
        # only the sampler of its first trial draws afresh.
        return optuna.samplers.QMCSampler(seed=given, independent_sampler=optuna.samplers.RandomSampler(seed=seed))
    raise StudyError(f"unknown sampler {name!r}; one of {', '.join(SAMPLERS)}")


def _pruner(spec):
    import optuna

    name, grace = spec.get("name", "MedianPruner"), int(spec.get("grace_period", 1))
    if name == "MedianPruner":
        # startup_trials: finished trials before any is pruned (Optuna's default 5 is most of a small sweep).
        return optuna.pruners.MedianPruner(n_startup_trials=int(spec.get("startup_trials", 5)), n_warmup_steps=grace)
    # grace_period is the first rung; reduction_factor and bootstrap_count are Optuna's own (defaults 3 and 0).
    factor = int(spec.get("reduction_factor", 3))
    if name == "SuccessiveHalvingPruner":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, grace), reduction_factor=factor,
                                                      bootstrap_count=int(spec.get("bootstrap_count", 0)))
    if name == "HyperbandPruner":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, grace), reduction_factor=factor)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise StudyError(f"unknown pruner {name!r}; one of {', '.join(PRUNERS)}")


def _suggest(trial, p):
    kind, args, name = p["kind"], p["args"], p["name"]
    if kind == "choice":
        return trial.suggest_categorical(name, list(args))
    if kind == "uniform":
        return trial.suggest_float(name, args[0], args[1])
    if kind == "loguniform":
        return trial.suggest_float(name, args[0], args[1], log=True)
    if kind == "range":
        return trial.suggest_float(name, args[0], args[1], step=args[2])
    if kind == "int":
        return trial.suggest_int(name, int(args[0]), int(args[1]))
    raise StudyError(f"{name}: unknown kind {kind!r}")


def _tell(study, number, *values, **kw):
    """`study.tell`, once: a trial told again is left as it was. GridSampler
    stops the study when its grid is used up, which Optuna allows only
    inside `optimize` and raises from `tell` after the trial is recorded."""
    try:
        study.tell(number, *values, skip_if_finished=True, **kw)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def _value(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class Studies:
    """The open studies of this process, by name."""

    def __init__(self):
        self.open_studies = {}  # name -> (study, space)
        self.grace = {}

    def study(self, name):
        if name not in self.open_studies:
            raise StudyError(f"study {name!r} is not open; send op open first")
        return self.open_studies[name]

    def op_open(self, r):
        import optuna

        space = r.get("space") or []
        if not space:
            raise StudyError("space: a study needs at least one parameter")
        direction = r.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise StudyError(f"direction {direction!r}: maximize or minimize")
        sampler = r.get("sampler") or {}
        study = optuna.create_study(
            study_name=r["study"], storage=_storage(r["storage"]), direction=direction,
            sampler=_sampler(sampler, space), pruner=_pruner(r.get("pruner") or {}), load_if_exists=True,
        )
        done = len(study.get_trials(deepcopy=False))
        if done:
            # Loaded with trials: the sampler carries on from them, not from its seed's start.
            study.sampler = _sampler(sampler, space, done)
        self.open_studies[r["study"]] = (study, space)
        return {"trials": self._trials(study)}

    def op_ask(self, r):
        study, space = self.study(r["study"])
        trial = study.ask()
        params = {p["name"]: _suggest(trial, p) for p in space}
        return {"number": trial.number, "params": params}

    def _trial(self, study, number):
        import optuna

        for frozen in study.get_trials(deepcopy=False):
            if frozen.number == number:
                if frozen.state != optuna.trial.TrialState.RUNNING:
                    raise StudyError(f"trial {number} is {frozen.state.name.lower()}, not running")
                # A trial asked by an earlier process: its storage id is all Optuna needs.
                return optuna.trial.Trial(study, frozen._trial_id)
        raise StudyError(f"no trial {number} in study {study.study_name!r}")

    def op_report(self, r):
        study, _ = self.study(r["study"])
        value = _value(r.get("value"))
        if value is None:
            return {"prune": False, "note": "not a finite number; not reported"}
        trial = self._trial(study, int(r["number"]))
        # A step reported again (a resent request) is ignored by Optuna.
        trial.report(value, int(r["step"]))
        return {"prune": bool(trial.should_prune())}

    def op_tell(self, r):
        import optuna

        study, _ = self.study(r["study"])
        state = r.get("state", "complete")
        number = int(r["number"])
        if state == "complete":
            value = _value(r.get("value"))
            if value is None:
                _tell(study, number, state=optuna.trial.TrialState.FAIL)
                return {"state": "fail", "note": "no finite value; told as failed"}
            _tell(study, number, value)
        elif state == "pruned":
            _tell(study, number, state=optuna.trial.TrialState.PRUNED)
        elif state == "fail":
            _tell(study, number, state=optuna.trial.TrialState.FAIL)
        else:
            raise StudyError(f"state {state!r}: complete, pruned or fail")
        return {"state": state}

    def _trials(self, study):
        return [
            {"number": t.number, "state": t.state.name.lower(), "params": t.params, "value": _value(t.value),
             "intermediate": {str(k): _value(v) for k, v in sorted(t.intermediate_values.items())}}
            for t in study.get_trials(deepcopy=False)
        ]

    def op_trials(self, r):
        study, _ = self.study(r["study"])
        return {"trials": self._trials(study)}

    def op_best(self, r):
        study, _ = self.study(r["study"])
        try:
            best = study.best_trial
        except ValueError:
            return {"best": None}
        return {"best": {"number": best.number, "value": _value(best.value), "params": best.params}}


def serve(stdin=sys.stdin, stdout=sys.stdout):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = Studies()
    for line in stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            handler = getattr(studies, "op_" + str(request.get("op")), None)
            if handler is None:
                raise StudyError(f"unknown op {request.get('op')!r}")
            answer = {"id": request_id, "ok": True, **handler(request)}
        except StudyError as error:
            answer = {"id": request_id, "ok": False, "error": str(error)}
        except Exception as error:  # Optuna's own errors, one line each
            answer = {"id": request_id, "ok": False, "error": f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0
