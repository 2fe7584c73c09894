import Testing
import YardDomain

@Suite("Redaction of secrets")
struct RedactionTests {
    let config: JSONValue = [
        "model": "yolov8n.yaml",
        "mlflow": ["MLFLOW_TRACKING_URI": "http://alice:s3cret@mlflow:5000/path"],
        "minio": ["MINIO_ENDPOINT": "http://minio:9000", "MINIO_ID": "mlflow", "MINIO_SECRET_KEY": "password"],
        "redis": ["REDIS_PASSWORD": "pw", "REDIS_HOST": "localhost"],
        "extras": ["api_token": "t0k3n", "list": ["redis://:pw2@host:6379/0"]],
    ]

    @Test func secretsAreMasked() {
        let redacted = Redaction.redact(config)
        #expect(redacted["minio"]?["MINIO_SECRET_KEY"] == "***")
        #expect(redacted["minio"]?["MINIO_ID"] == "mlflow")
        #expect(redacted["redis"]?["REDIS_PASSWORD"] == "***")
        #expect(redacted["extras"]?["api_token"] == "***")
        #expect(redacted["mlflow"]?["MLFLOW_TRACKING_URI"] == "http://alice:***@mlflow:5000/path")
        #expect(redacted["extras"]?["list"] == ["redis://:***@host:6379/0"])
        let text = "\(redacted)"
        for secret in ["s3cret", "password", "pw\"", "t0k3n", "pw2"] { #expect(!text.contains(secret), "\(secret) leaked") }
    }

    @Test func secretsCanBeRestoredForTheWorker() {
        let secrets = Redaction.secrets(of: config)
        #expect(secrets.count == 5)
        #expect(Redaction.restore(Redaction.redact(config), secrets: secrets) == config)
    }

    @Test func urlsWithoutCredentialsAreUnchanged() {
        #expect(Redaction.redactURLCredentials("http://mlflow:5000/a@b") == "http://mlflow:5000/a@b")
        #expect(Redaction.redactURLCredentials("no url here") == "no url here")
        #expect(Redaction.redactLine("pushing to https://u:p@host/x now") == "pushing to https://u:***@host/x now")
    }
}
