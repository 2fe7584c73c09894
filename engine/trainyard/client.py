"""A client of Trainyard's HTTP API (see GET /api/openapi.json), standard
library only. Every call answers the server's JSON; every error is an
`APIError` whose str() is one line: the server's own message (which names
the field), or what to do when the server cannot be reached."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Union

DEFAULT_URL = "http://127.0.0.1:8787"
TERMINAL_STATES = frozenset({"succeeded", "failed", "stopped", "pruned"})
WEIGHTS = ("best", "last")


class APIError(Exception):
    """An error answer of the server (`status` 4xx/5xx, `error` its code,
    `field` the input it is about, `message` one line that says what to do),
    or `status` 0 when no answer came (the server is down or unreachable)."""

    def __init__(self, status: int, message: str, error: str = "", field: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no answer"
        return f"{where}: {self.message}"

    @classmethod
    def from_response(cls, status: int, body: bytes) -> "APIError":
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return cls(status, data["message"], str(data.get("error") or ""), data.get("field") if isinstance(data.get("field"), str) else None)
        # Not ours (a proxy's page?): its first line, short.
        text = body.decode("utf-8", "replace").strip().splitlines()
        return cls(status, (text[0][:200] if text else "empty answer") or "empty answer", "http")


@dataclass
class Event:
    """One Server-Sent Event: `seq` its place in the event log, `type`
    (state, epoch, progress, log, artifact, ...), `data` its JSON."""

    seq: int
    type: str
    data: Any = field(default_factory=dict)


class Client:
    """Trainyard's API at `url` (default $YARD_SERVER, else
    http://127.0.0.1:8787), with `token` (default $YARD_TOKEN) sent as a
    bearer token when there is one."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0):
        url = url or os.environ.get("YARD_SERVER") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url: {url!r} is not an http(s) URL of a Trainyard server, e.g. {DEFAULT_URL}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("YARD_TOKEN") or None
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    # Jobs

    def submit(self, config: Union[str, "os.PathLike[str]", Dict[str, Any]], git_commit: Optional[str] = None) -> Dict[str, Any]:
        """Queues a job: `config` is a YAML or JSON file's path, YAML text, or
        a dict. From a file, relative `model` and `train.data` paths are
        resolved against the file's folder (as `yard submit` does), and the
        commit checked out there is recorded. Answers `{id, state}`."""
        headers = {}
        if isinstance(config, dict):
            body, kind = json.dumps(config).encode(), "application/json"
        else:
            text, path = _config_text(config)
            body, kind = text.encode("utf-8"), "application/yaml"
            if path is not None:
                resolved = _resolved(text, os.path.dirname(os.path.abspath(path)))
                if resolved is not None:
                    body, kind = json.dumps(resolved).encode(), "application/json"
                git_commit = git_commit or _git_commit(os.path.dirname(os.path.abspath(path)))
        if git_commit:
            headers["X-Yard-Git-Commit"] = git_commit
        return self._json("POST", "/api/jobs", body=body, content_type=kind, headers=headers)

    def jobs(self, state: Optional[str] = None, limit: int = 100, owner: Optional[str] = None, mine: bool = False) -> List[Dict[str, Any]]:
        """Jobs, newest first (`state`: only those in it; `mine`: the caller's)."""
        query = {"limit": limit, "state": state, "owner": owner, "mine": "true" if mine else None}
        return self._json("GET", "/api/jobs", query=query)["jobs"]

    def job(self, job_id: str) -> Dict[str, Any]:
        """A job with its `epoch_metrics` and `artifacts`."""
        return self._json("GET", f"/api/jobs/{_segment(job_id, 'job_id')}")

    def stop(self, job_id: str) -> Dict[str, Any]:
        return self._json("POST", f"/api/jobs/{_segment(job_id, 'job_id')}/stop")

    def resume(self, job_id: str) -> Dict[str, Any]:
        return self._json("POST", f"/api/jobs/{_segment(job_id, 'job_id')}/resume")

    def logs(self, job_id: str) -> str:
        """The training log as it is now."""
        return self._request("GET", f"/api/jobs/{_segment(job_id, 'job_id')}/logs").decode("utf-8", "replace")

    def events(self, job_id: str, after: int = 0) -> Iterator[Event]:
        """A job's events from `after` on, as they happen; ends after the
        event of its end. A dropped connection (a server restart) is resumed
        where it left off."""
        path = f"/api/jobs/{_segment(job_id, 'job_id')}/events"
        cursor = after
        failures = 0
        while True:
            ended = False
            try:
                for event in self._stream(path, cursor):
                    cursor = event.seq
                    failures = 0
                    yield event
                    if event.type == "state" and isinstance(event.data, dict) and event.data.get("state") in TERMINAL_STATES:
                        ended = True
                        return
            except APIError as error:
                if error.status != 0 or failures >= 5:
                    raise
                failures += 1
                time.sleep(min(2.0 * failures, 10.0))
                continue
            # The stream ended without an end (a server shutting down ends
            # every stream): go on if the job has not ended.
            if not ended and self.job(job_id).get("state") in TERMINAL_STATES:
                return
            time.sleep(0.5)

    def epochs(self, job_id: str) -> Iterator[Dict[str, Any]]:
        """Each epoch as it ends: `{epoch, epochs, metrics, ...}`."""
        for event in self.events(job_id):
            if event.type == "epoch" and isinstance(event.data, dict):
                yield event.data

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Follows the job until it ends and answers it (see `job`); with
        `timeout` (seconds, checked as events come: each epoch sends
        several), a TimeoutError when it has not ended by then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in self.events(job_id):
            if deadline is not None and time.monotonic() > deadline:
                break
        job = self.job(job_id)
        if job.get("state") not in TERMINAL_STATES:
            raise TimeoutError(f"job {job_id} is still {job.get('state')} after {timeout:g} s")
        return job

    def download_weights(self, job_id: str, path: Optional[str] = None, which: str = "best") -> str:
        """Saves the job's `best` (or `last`) weights to `path` (default
        ID-best.pt here), whole or not at all; answers the path."""
        if which not in WEIGHTS:
            raise ValueError(f"which: {which!r} is not best or last")
        target = os.fspath(path) if path is not None else f"{job_id}-{which}.pt"
        if os.path.isdir(target):
            target = os.path.join(target, f"{job_id}-{which}.pt")
        partial = f"{target}.part-{os.getpid()}"
        try:
            with self._open("GET", f"/api/jobs/{_segment(job_id, 'job_id')}/weights", query={"which": which}) as response, open(partial, "wb") as out:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return target

    # The rest of the API, as JSON

    def sweeps(self, limit: int = 100) -> List[Dict[str, Any]]:
        return self._json("GET", "/api/sweeps", query={"limit": limit})["sweeps"]

    def sweep(self, sweep_id: str) -> Dict[str, Any]:
        return self._json("GET", f"/api/sweeps/{_segment(sweep_id, 'sweep_id')}")

    def datasets(self) -> List[Dict[str, Any]]:
        return self._json("GET", "/api/datasets")["datasets"]

    def workers(self) -> List[Dict[str, Any]]:
        return self._json("GET", "/api/workers")["workers"]

    def models(self) -> Dict[str, Any]:
        return self._json("GET", "/api/models")

    def register(self, job_id: str, name: str, alias: Optional[str] = None) -> Dict[str, Any]:
        """Registers a succeeded job's best weights as a version of model `name`."""
        body = {"job_id": job_id, "name": name}
        if alias:
            body["alias"] = alias
        return self._json("POST", "/api/models", body=json.dumps(body).encode(), content_type="application/json")

    def openapi(self) -> Dict[str, Any]:
        """The API's OpenAPI document."""
        return self._json("GET", "/api/openapi.json")

    # HTTP

    def _url(self, path: str, query: Optional[Dict[str, Any]] = None) -> str:
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        return self.url + path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")

    def _open(self, method: str, path: str, query=None, body: Optional[bytes] = None, content_type: Optional[str] = None,
              headers: Optional[Dict[str, str]] = None, timeout: Optional[float] = None):
        request = urllib.request.Request(self._url(path, query), data=body, method=method)
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise APIError.from_response(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise APIError(0, f"cannot reach {self.url}: {reason}; is `yard up` running there?", "unreachable") from None

    def _request(self, method: str, path: str, **options) -> bytes:
        with self._open(method, path, **options) as response:
            try:
                return response.read()
            except (OSError, socket.timeout) as error:
                raise APIError(0, f"{self.url}{path}: the answer broke off ({error})", "unreachable") from None

    def _json(self, method: str, path: str, **options) -> Any:
        data = self._request(method, path, **options)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise APIError(200, f"{self.url}{path}: the answer is not JSON; is {self.url} a Trainyard server?", "not_json") from None

    def _stream(self, path: str, after: int) -> Iterator[Event]:
        """The events of an SSE stream (keep-alive comments skipped). A
        stream that stays silent past the read timeout (the server sends a
        keep-alive well within it) counts as dropped."""
        headers = {"Last-Event-ID": str(after)} if after else {}
        response = self._open("GET", path, headers=headers, timeout=max(self.timeout, 120.0))
        seq, kind, data = None, "message", []
        try:
            with response:
                for raw in response:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if not line:
                        if data:
                            text = "\n".join(data)
                            try:
                                payload = json.loads(text)
                            except ValueError:
                                payload = text
                            yield Event(int(seq) if seq and seq.isdigit() else after, kind, payload)
                        seq, kind, data = None, "message", []
                    elif line.startswith(":"):
                        continue
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "id":
                            seq = value
                        elif name == "event":
                            kind = value
                        elif name == "data":
                            data.append(value)
        except (OSError, socket.timeout) as error:
            raise APIError(0, f"{self.url}{path}: the stream broke off ({error})", "unreachable") from None


def _segment(value: str, name: str) -> str:
    """A path segment: an id as given, quoted, never a way into another route."""
    if not isinstance(value, str) or not value or value in (".", "..") or len(value) > 200:
        raise ValueError(f"{name}: {value!r} is not an id")
    return urllib.parse.quote(value, safe="")


def _config_text(config) -> "tuple[str, Optional[str]]":
    """(text, its file's path) of a config given as a path or as YAML text."""
    if isinstance(config, os.PathLike):
        config = os.fspath(config)
    if not isinstance(config, str):
        raise TypeError(f"config: give a file's path, YAML text or a dict, not {type(config).__name__}")
    looks_like_path = "\n" not in config and (config.endswith((".yaml", ".yml", ".json")) or os.sep in config)
    if looks_like_path or os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as handle:
                return handle.read(), config
        except FileNotFoundError:
            raise FileNotFoundError(f"config: no file {config}") from None
        except UnicodeDecodeError:
            raise ValueError(f"config: {config} is not UTF-8 text; save it as UTF-8") from None
    return config, None


def _resolved(text: str, folder: str) -> Optional[Dict[str, Any]]:
    """The config with relative `model` and `train.data` made absolute
    against `folder` where something is there; None without PyYAML or
    when the text is not a mapping (the server then says what is wrong)."""
    try:
        import yaml
    except ImportError:
        return None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None

    def absolute(value):
        if not isinstance(value, str) or not value or value.startswith(("/", "s3://", "models:/", "dataset:")) or "://" in value:
            return value
        joined = os.path.normpath(os.path.join(folder, os.path.expanduser(value)))
        return joined if os.path.exists(joined) else value

    if "model" in document:
        document["model"] = absolute(document["model"])
    train = document.get("train")
    if isinstance(train, dict) and "data" in train:
        train["data"] = absolute(train["data"])
    try:
        json.dumps(document)
    except (TypeError, ValueError):  # dates and other YAML-only values: the server parses the text itself
        return None
    return document


def _git_commit(folder: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else None
