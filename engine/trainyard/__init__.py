"""Trainyard's Python client: submit, list and follow jobs and fetch their
weights from a `yard up` server, from a notebook or a script.

    from trainyard import Client
    c = Client("http://127.0.0.1:8080", token)   # token: None without YARD_TOKEN
    job = c.submit("cfg.yaml")
    for epoch in c.epochs(job["id"]):
        print(epoch["epoch"], epoch["metrics"].get("metrics/mAP50(B)"))
    c.download_weights(job["id"], "best.pt")

Written on the server's OpenAPI document (GET /api/openapi.json) with the
standard library only; every error the server answers is an `APIError`
with its status and one-line message.
"""

from .client import TERMINAL_STATES, APIError, Client, Event

__all__ = ["APIError", "Client", "Event", "TERMINAL_STATES"]
