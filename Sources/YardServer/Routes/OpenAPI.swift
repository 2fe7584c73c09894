/// `GET /api/openapi.json`: the API's OpenAPI 3.1 description (the
/// registry and serving routes in full, the others by their summary).
enum OpenAPI {
    static let document = #"""
{
  "openapi": "3.1.0",
  "info": {"title": "Trainyard", "version": "1", "description": "Self-hosted YOLO training, registry and serving. With YARD_TOKEN set every /api route needs `Authorization: Bearer TOKEN`."},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Error": {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string", "description": "invalid_input, not_found, conflict, unauthorized, too_large, unsupported_media_type, unavailable"},
        "message": {"type": "string", "description": "one line that says what to do"},
        "field": {"type": "string"}}},
      "Box": {"type": "object", "required": ["class", "name", "score", "xyxy", "xyxyn"], "properties": {
        "class": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1},
        "xyxy": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "pixels of the image as sent"},
        "xyxyn": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "normalised to 0-1"}}},
      "TopClass": {"type": "object", "required": ["class", "name", "score"], "properties": {
        "class": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number"}}},
      "ImageResult": {"type": "object", "required": ["width", "height"], "properties": {
        "width": {"type": "integer"}, "height": {"type": "integer"}, "faces_blurred": {"type": "integer", "description": "with face blurring on"},
        "boxes": {"type": "array", "items": {"$ref": "#/components/schemas/Box"}, "description": "detection models"},
        "top": {"type": "array", "items": {"$ref": "#/components/schemas/TopClass"}, "description": "classification models: the top_k classes"}}},
      "Prediction": {"type": "object", "required": ["model", "version", "task", "images", "timing_ms"], "properties": {
        "model": {"type": "string"}, "version": {"type": "string", "description": "the version that answered"},
        "sha256": {"type": "string"}, "aliases": {"type": "array", "items": {"type": "string"}},
        "runtime": {"type": "string", "enum": ["torch", "onnx"]},
        "task": {"type": "string", "enum": ["detect", "segment", "classify", "pose", "obb"]},
        "images": {"type": "array", "items": {"$ref": "#/components/schemas/ImageResult"}, "description": "one per image, in order"},
        "timing_ms": {"type": "object", "properties": {"decode": {"type": "number"}, "inference": {"type": "number"}, "total": {"type": "number"}}}}},
      "HealthCheck": {"type": "object", "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"},
        "latency_ms": {"type": "number"}, "load_ms": {"type": "number"}, "time": {"type": "string", "format": "date-time"}}},
      "ModelVersion": {"type": "object", "required": ["name", "version", "job_id"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"}, "job_id": {"type": "string"}, "run_id": {"type": "string"},
        "source": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
        "aliases": {"type": "array", "items": {"type": "string"}}, "sha256": {"type": "string"}, "size": {"type": "integer"},
        "task": {"type": "string"}, "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
        "mlflow_version": {"type": "string"}, "health": {"$ref": "#/components/schemas/HealthCheck"},
        "exports": {"type": "object", "description": "by format (onnx)", "additionalProperties": {"type": "object", "properties": {
          "format": {"type": "string"}, "sha256": {"type": "string"}, "size": {"type": "integer"}, "imgsz": {"type": "integer"},
          "export_ms": {"type": "number"}, "created_at": {"type": "string", "format": "date-time"}}}},
        "locations": {"type": "array", "items": {"type": "object", "properties": {
          "kind": {"type": "string", "enum": ["artifact", "s3", "mlflow"]}, "key": {"type": "string"}, "bucket": {"type": "string"},
          "endpoint": {"type": "string"}, "run_id": {"type": "string"}}}}}},
      "ModelSettings": {"type": "object", "properties": {"blur_faces": {"type": ["object", "null"],
        "description": "null: off. OpenCV's frontal-face Haar cascade; each key optional",
        "properties": {"scale_factor": {"type": "number", "exclusiveMinimum": 1, "maximum": 2, "default": 1.1},
          "min_neighbors": {"type": "integer", "minimum": 0, "maximum": 50, "default": 5},
          "min_size": {"type": "integer", "minimum": 8, "maximum": 4096, "default": 24},
          "detect_side": {"type": "integer", "minimum": 160, "maximum": 8000, "default": 1280}}}}},
      "AliasChange": {"type": "object", "properties": {"name": {"type": "string"}, "alias": {"type": "string"},
        "version": {"type": ["string", "null"]}, "previous": {"type": ["string", "null"]},
        "time": {"type": "string", "format": "date-time"}, "reason": {"type": "string"}}}
    },
    "responses": {"Error": {"description": "a 4xx/5xx with its reason", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
  },
  "security": [{"bearer": []}],
  "paths": {
    "/health": {"get": {"summary": "liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
    "/api/predict/{name}": {"post": {
      "summary": "Run a registered version on one or more images",
      "parameters": [
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "query", "schema": {"type": "string"}, "description": "a version number"},
        {"name": "alias", "in": "query", "schema": {"type": "string"}, "description": "default: production, else the latest version"},
        {"name": "conf", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.25}},
        {"name": "iou", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7}},
        {"name": "imgsz", "in": "query", "schema": {"type": "integer", "minimum": 32, "maximum": 4096}},
        {"name": "max_det", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 3000, "default": 300}},
        {"name": "classes", "in": "query", "schema": {"type": "string"}, "description": "comma-separated class ids"},
        {"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 5}},
        {"name": "runtime", "in": "query", "schema": {"type": "string", "enum": ["torch", "onnx"], "default": "torch"},
         "description": "onnx: the version's ONNX export (made by POST .../versions/N/export), run by onnxruntime"}],
      "requestBody": {"required": true, "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}},
      "responses": {
        "200": {"description": "one result per image; headers X-Model-Version: NAME/N, X-Model-Runtime", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
        "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"},
        "415": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}}},
    "/api/serving": {"get": {"summary": "loaded versions: processes, threads, memory, load time, restarts", "responses": {"200": {"description": "ok"}}}},
    "/api/models": {
      "get": {"summary": "models with their versions and aliases", "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {
          "models": {"type": "array", "items": {"type": "object"}}, "versions": {"type": "array", "items": {"$ref": "#/components/schemas/ModelVersion"}}}}}}}}},
      "post": {"summary": "register a succeeded job's best weights",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["job_id", "name"],
          "properties": {"job_id": {"type": "string"}, "name": {"type": "string"}, "alias": {"type": "string"}}}}}},
        "responses": {"201": {"description": "a new version", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelVersion"}}}},
          "200": {"description": "the version this job made already"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}": {"get": {"summary": "a model and its alias history", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "ok"}, "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/aliases": {"post": {"summary": "point an alias at a version (a served alias moves only after the version's health check)",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["alias", "version"],
        "properties": {"alias": {"type": "string"}, "version": {"type": "string"}}}}}},
      "responses": {"200": {"description": "the move", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AliasChange"}}}},
        "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/aliases/{alias}": {
      "get": {"summary": "the version an alias points at", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}},
      "delete": {"summary": "remove an alias", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}},
    "/api/models/{name}/aliases/{alias}/rollback": {"post": {"summary": "back to the version the alias pointed at before",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "the move"}}}},
    "/api/models/{name}/versions/{version}/weights": {"get": {"summary": "the weights file, or with ?format=onnx its export (X-Content-SHA256)",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["pt", "onnx"], "default": "pt"}}],
      "responses": {"200": {"description": "the file", "content": {"application/octet-stream": {}}}, "404": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/versions/{version}/export": {"post": {"summary": "export the weights (ONNX, dynamic axes), kept by content hash beside them; made once",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["onnx"], "default": "onnx"}}],
      "responses": {"200": {"description": "the version, with exports.onnx", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelVersion"}}}},
        "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/settings": {
      "get": {"summary": "the model's serving preprocessing", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
          "404": {"$ref": "#/components/responses/Error"}}},
      "put": {"summary": "replace the model's serving preprocessing (face blurring); the next request uses it",
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
        "responses": {"200": {"description": "the settings stored", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
          "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/jobs": {"get": {"summary": "list jobs"}, "post": {"summary": "submit a config (YAML or JSON)"}},
    "/api/jobs/{id}": {"get": {"summary": "a job"}},
    "/api/jobs/{id}/stop": {"post": {"summary": "graceful stop"}},
    "/api/jobs/{id}/resume": {"post": {"summary": "resume from the last checkpoint"}},
    "/api/jobs/{id}/events": {"get": {"summary": "Server-Sent Events"}},
    "/api/jobs/{id}/logs": {"get": {"summary": "training log (?follow=true streams)"}},
    "/api/events": {"get": {"summary": "the event log as Server-Sent Events (Last-Event-ID or ?after=, ?entity=, ?id=, ?type=, ?state=, ?follow=false)"}},
    "/api/events/head": {"get": {"summary": "{seq}: the newest event's sequence number (read it, then the state, then follow /api/events?after=SEQ)"}},
    "/api/session": {"get": {"summary": "the dashboard's session: {auth_required, signed_in, csrf}"}, "post": {"summary": "sign in with {token}: sets the HttpOnly session cookie"}, "delete": {"summary": "sign out (X-CSRF-Token)"}},
    "/api/sweeps": {"get": {"summary": "list sweeps"}, "post": {"summary": "start a sweep"}},
    "/api/sweeps/{id}": {"get": {"summary": "a sweep and its trials"}},
    "/api/sweeps/{id}/stop": {"post": {"summary": "stop a sweep"}},
    "/api/datasets": {"get": {"summary": "list datasets"}, "post": {"summary": "add a version (JSON lines of progress)"}},
    "/api/datasets/{name}": {"get": {"summary": "a dataset's versions"}},
    "/api/datasets/{name}/versions/{version}/report": {"get": {"summary": "a version's validation report"}},
    "/api/workers": {"get": {"summary": "workers and their GPUs"}},
    "/api/openapi.json": {"get": {"summary": "this document"}},
    "/metrics": {"get": {"summary": "Prometheus text: predict requests and errors by model, version and code; latency and images-per-request histograms; queue depth, load time, memory and restarts per loaded version; jobs by state"}}
  }
}
"""#
}
