"""The Python client against a scripted HTTP server of the standard library:
what it sends (auth, body, headers, cursors) and how it reads answers,
streams and errors. The live server is tested end to end in Swift
(PythonClientTests)."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trainyard import APIError, Client


class Fake:
    """Routes: (method, path) -> a function of the handler answering
    (status, headers, body bytes, or a list of chunks to stream)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                fake.requests.append({"method": method, "path": self.path, "headers": dict(self.headers), "body": body})
                answer = fake.routes.get((method, path))
                if answer is None:
                    status, headers, payload = 404, {"Content-Type": "application/json"}, json.dumps(
                        {"error": "not_found", "message": f"no route {path}", "field": "path"}).encode()
                else:
                    status, headers, payload = answer(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(payload, list):
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in payload:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    return
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self.handle_one("GET")

            def do_POST(self):
                self.handle_one("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json(self, method, path, body, status=200):
        self.routes[(method, path)] = lambda _: (status, {"Content-Type": "application/json"}, json.dumps(body).encode())


@pytest.fixture
def fake():
    server = Fake()
    yield server
    server.server.shutdown()
    server.server.server_close()


def sse(*events):
    frames = []
    for seq, kind, data in events:
        frames.append(f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode())
    return frames


def test_submit_from_a_file_resolves_relative_paths_and_sends_the_token(fake, tmp_path):
    fake.json("POST", "/api/jobs", {"id": "j1", "state": "queued"}, status=201)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.yaml").write_text("names: {0: a}\n")
    config = tmp_path / "cfg.yaml"
    config.write_text("model: yolov8n.yaml\ntrain: {data: data/d.yaml, epochs: 2}\n")
    job = Client(fake.url, "tok-123").submit(str(config))
    assert job == {"id": "j1", "state": "queued"}
    sent = fake.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer tok-123"
    assert sent["headers"]["Content-Type"] == "application/json"
    body = json.loads(sent["body"])
    assert body["train"]["data"] == str(tmp_path / "data" / "d.yaml")
    assert body["model"] == "yolov8n.yaml", "a name that is no file here is left to the server"


def test_submit_takes_yaml_text_and_dicts_as_they_are(fake):
    fake.json("POST", "/api/jobs", {"id": "j2", "state": "queued"}, status=201)
    client = Client(fake.url)
    client.submit("model: yolov8n.yaml\ntrain: {data: /x/d.yaml}\n")
    assert fake.requests[-1]["headers"]["Content-Type"] == "application/yaml"
    assert fake.requests[-1]["body"].startswith(b"model: yolov8n.yaml")
    assert "Authorization" not in fake.requests[-1]["headers"]
    client.submit({"model": "yolov8n.yaml", "train": {"data": "/x/d.yaml"}})
    assert json.loads(fake.requests[-1]["body"])["train"]["data"] == "/x/d.yaml"


def test_a_missing_config_file_is_one_line_naming_it(fake):
    with pytest.raises(FileNotFoundError, match=r"^config: no file nope/cfg.yaml$"):
        Client(fake.url).submit("nope/cfg.yaml")
    assert fake.requests == [], "nothing was sent"


def test_an_error_answer_is_an_api_error_with_the_servers_fields(fake):
    fake.json("POST", "/api/jobs", {"error": "invalid_input", "field": "train.epochs",
                                    "message": "train.epochs: must be a positive integer, got -1"}, status=400)
    with pytest.raises(APIError) as caught:
        Client(fake.url).submit({"model": "yolov8n.yaml"})
    error = caught.value
    assert (error.status, error.error, error.field) == (400, "invalid_input", "train.epochs")
    assert str(error) == "HTTP 400: train.epochs: must be a positive integer, got -1"
    assert "\n" not in str(error)


def test_an_answer_that_is_not_ours_is_its_first_line(fake):
    fake.routes[("GET", "/api/jobs")] = lambda _: (502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>\n<p>nginx</p>")
    with pytest.raises(APIError) as caught:
        Client(fake.url).jobs()
    assert caught.value.status == 502
    assert str(caught.value) == "HTTP 502: <h1>Bad Gateway</h1>"


def test_a_server_that_is_down_is_one_line_saying_so():
    client = Client("http://127.0.0.1:9", timeout=2)
    with pytest.raises(APIError) as caught:
        client.jobs()
    assert caught.value.status == 0
    assert str(caught.value).startswith("no answer: cannot reach http://127.0.0.1:9")
    assert "\n" not in str(caught.value)


def test_a_bad_url_or_id_is_refused_before_sending(fake):
    with pytest.raises(ValueError, match="url"):
        Client("127.0.0.1:8787")
    with pytest.raises(ValueError, match="job_id"):
        Client(fake.url).job("..")
    fake.json("GET", "/api/jobs/a%2Fb", {"id": "a/b"})
    assert Client(fake.url).job("a/b") == {"id": "a/b"}, "an id is one quoted path segment"
    assert "tok" not in repr(Client(fake.url, "tok"))


def test_jobs_list_passes_its_filters(fake):
    fake.json("GET", "/api/jobs", {"jobs": [{"id": "a"}]})
    assert Client(fake.url).jobs(state="running", limit=5, mine=True) == [{"id": "a"}]
    assert fake.requests[-1]["path"] == "/api/jobs?limit=5&state=running&mine=true"


def test_epochs_follow_the_stream_to_the_jobs_end(fake):
    frames = [b": keep-alive\n\n"] + sse(
        (3, "state", {"state": "running"}),
        (4, "epoch", {"epoch": 1, "epochs": 2, "metrics": {"metrics/mAP50(B)": 0.1}}),
        (5, "progress", {"batch": 3}),
        (6, "epoch", {"epoch": 2, "epochs": 2, "metrics": {"metrics/mAP50(B)": 0.4}}),
        (7, "state", {"state": "succeeded"}),
        (8, "epoch", {"epoch": 99}))  # after the end: never read
    fake.routes[("GET", "/api/jobs/j1/events")] = lambda _: (200, {"Content-Type": "text/event-stream"}, frames)
    epochs = list(Client(fake.url).epochs("j1"))
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["metrics"]["metrics/mAP50(B)"] == 0.4


def test_a_dropped_stream_is_resumed_after_the_last_event(fake):
    calls = []

    def events(handler):
        calls.append(handler.headers.get("Last-Event-ID"))
        if len(calls) == 1:  # the server restarts mid-job: the stream ends early
            return 200, {"Content-Type": "text/event-stream"}, sse((4, "epoch", {"epoch": 1}))
        return 200, {"Content-Type": "text/event-stream"}, sse((5, "epoch", {"epoch": 2}), (6, "state", {"state": "failed"}))

    fake.routes[("GET", "/api/jobs/j1/events")] = events
    fake.json("GET", "/api/jobs/j1", {"id": "j1", "state": "running"})
    seen = [(e.seq, e.type) for e in Client(fake.url).events("j1")]
    assert seen == [(4, "epoch"), (5, "epoch"), (6, "state")]
    assert calls == [None, "4"]


def test_wait_answers_the_ended_job(fake):
    fake.routes[("GET", "/api/jobs/j1/events")] = lambda _: (200, {}, sse((2, "state", {"state": "stopped"})))
    fake.json("GET", "/api/jobs/j1", {"id": "j1", "state": "stopped"})
    assert Client(fake.url).wait("j1")["state"] == "stopped"


def test_weights_are_written_whole_or_not_at_all(fake, tmp_path):
    fake.routes[("GET", "/api/jobs/j1/weights")] = lambda _: (200, {"Content-Type": "application/octet-stream"}, b"PT" * 1000)
    client = Client(fake.url)
    path = client.download_weights("j1", str(tmp_path / "w.pt"))
    assert open(path, "rb").read() == b"PT" * 1000
    assert fake.requests[-1]["path"] == "/api/jobs/j1/weights?which=best"
    assert client.download_weights("j1", str(tmp_path), which="best") == str(tmp_path / "j1-best.pt")

    fake.json("GET", "/api/jobs/j2/weights", {"error": "not_found", "field": "which", "message": "job j2 has no best weights (it is running)"}, status=404)
    with pytest.raises(APIError, match="no best weights"):
        client.download_weights("j2", str(tmp_path / "w2.pt"))
    assert sorted(os.listdir(tmp_path)) == ["j1-best.pt", "w.pt"], "no partial file is left"
    with pytest.raises(ValueError, match="which"):
        client.download_weights("j1", which="../../etc")
