"""Checks a live server's answers against its own OpenAPI document (issue 29).

Usage: python validate_responses.py BASE_URL CASES_JSON   ($YARD_TOKEN: the bearer token)

CASES_JSON is a list of {"method", "path" (as sent), "template" (the
document's path), "status" (expected), "body" (optional JSON to send),
"token" (optional: another token than $YARD_TOKEN), "save" (optional: a
name to keep the answer's JSON under)}. A `${NAME.FIELD}` in a later case's
path, token or body strings is replaced by that field of a saved answer
(e.g. a viewer's token made by an earlier case).
Each answer must have the expected status, and its body must validate
against the schema the document gives that operation and status. JSON
bodies are validated whole; Server-Sent Events' `data` each against the
Event schema (the event log) or as JSON objects (a job's stream). An object
schema that lists its properties is also held to them: a field the server
sends that the document does not name is a mismatch too (the document is
what clients are generated from).

Prints one JSON line: {"checked": N, "problems": ["...", ...]}.
"""

import copy
import json
import os
import sys
import urllib.error
import urllib.request

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE, CASES = sys.argv[1], json.load(open(sys.argv[2]))
TOKEN = os.environ.get("YARD_TOKEN")


def fetch(method, path, body=None, token=TOKEN):
    request = urllib.request.Request(BASE + path, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", "Bearer " + token)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read()


status, _, raw = fetch("GET", "/api/openapi.json")
assert status == 200, f"/api/openapi.json: {status}"
spec = json.loads(raw)


def strict(document):
    """The document with `unevaluatedProperties: false` on every object
    schema that names its properties and says nothing of others, except the
    parts of an allOf (the whole is held to them instead)."""
    document = copy.deepcopy(document)
    in_all_of = set()

    def walk(node, parent_all_of=False):
        if isinstance(node, dict):
            if parent_all_of and "$ref" in node:
                in_all_of.add(node["$ref"])
            for key, value in node.items():
                if key == "allOf":
                    for part in value:
                        walk(part, True)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)

    def tighten(node, pointer, inside_all_of=False):
        if isinstance(node, dict):
            names_properties = "properties" in node and "additionalProperties" not in node and "unevaluatedProperties" not in node
            if names_properties and not inside_all_of and "#" + pointer not in in_all_of:
                node["unevaluatedProperties"] = False
            if "allOf" in node and "unevaluatedProperties" not in node and not inside_all_of and "#" + pointer not in in_all_of:
                node["unevaluatedProperties"] = False
            for key, value in node.items():
                tighten(value, f"{pointer}/{key}", key == "allOf" or (inside_all_of and key.isdigit()))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                tighten(item, f"{pointer}/{index}", inside_all_of)

    tighten(document, "")
    return document


registry = Registry().with_resource("urn:spec", Resource.from_contents(strict(spec), default_specification=DRAFT202012))


def validator(pointer):
    return Draft202012Validator({"$ref": "urn:spec#" + pointer}, registry=registry)


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_pointer(template, method, status):
    """The JSON pointer of the schema of this answer, or None (no JSON schema)."""
    responses = spec["paths"][template][method.lower()]["responses"]
    key = str(status)
    if key not in responses:
        return "missing"
    pointer = f"/paths/{template.replace('~', '~0').replace('/', '~1')}/{method.lower()}/responses/{key}"
    response = responses[key]
    if "$ref" in response:
        pointer = response["$ref"].lstrip("#")
        response = resolve(response)
    content = response.get("content", {})
    if "application/json" in content and "schema" in content["application/json"]:
        return pointer + "/content/application~1json/schema"
    return None


saved = {}


def substitute(value):
    if isinstance(value, str):
        for name, answer in saved.items():
            for field, field_value in answer.items() if isinstance(answer, dict) else []:
                value = value.replace("${%s.%s}" % (name, field), str(field_value))
        return value
    if isinstance(value, dict):
        return {key: substitute(item) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item) for item in value]
    return value


checked, problems = 0, []
for case in CASES:
    case = substitute(case)
    method, path, template, expected = case["method"], case["path"], case["template"], case["status"]
    if "${" in json.dumps(case):
        problems.append(f"{method} {path}: a ${{...}} names no saved answer")
        continue
    status, kind, raw = fetch(method, path, case.get("body"), case.get("token", TOKEN))
    where = f"{method} {path}"
    if status != expected:
        problems.append(f"{where}: status {status}, expected {expected}: {raw[:200]!r}")
        continue
    pointer = response_pointer(template, method, status)
    if pointer == "missing":
        problems.append(f"{where}: the document has no {status} answer for {method} {template}")
        continue
    if kind.startswith("text/event-stream"):
        event_validator = validator("/components/schemas/Event") if template == "/api/events" else None
        for line in raw.decode().splitlines():
            if not line.startswith("data:"):
                continue
            data = json.loads(line[5:])
            checked += 1
            if event_validator is None:
                if not isinstance(data, dict):
                    problems.append(f"{where}: an event's data is not an object: {line[:120]}")
                continue
            for error in event_validator.iter_errors(data):
                problems.append(f"{where}: event {data.get('seq')}: {'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")
        continue
    if pointer is None:
        continue
    checked += 1
    try:
        body = json.loads(raw)
    except ValueError:
        problems.append(f"{where}: not JSON: {raw[:120]!r}")
        continue
    if case.get("save"):
        saved[case["save"]] = body
    for error in validator(pointer).iter_errors(body):
        problems.append(f"{where}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:300]}")

print(json.dumps({"checked": checked, "problems": problems}))
