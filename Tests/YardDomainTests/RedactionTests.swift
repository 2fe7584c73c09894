import Foundation
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
        #expect(Redaction.redactText("pushing to https://u:p@host/x now") == "pushing to https://u:***@host/x now")
    }
}

@Suite("Masking by value")
struct MaskingTests {
    @Test func keysAreSecretByWord() {
        for key in ["MINIO_SECRET_KEY", "minio_key", "Authorization", "apiKey", "REDIS_PASSWORD", "session-cookie", "x-auth", "aws_access_key_id"] {
            #expect(Redaction.isSecretKey(key), "\(key)")
        }
        for key in ["keypoints", "kpt_shape", "data", "epochs", "monkey", "author", "MINIO_ENDPOINT", "MINIO_ID"] {
            #expect(!Redaction.isSecretKey(key), "\(key)")
        }
    }

    @Test func credentialLookingValuesAreMaskedAnywhere() {
        let cases = [
            ("Bearer abc.def-123456", "Bearer ***"),
            ("curl -H 'authorization: bearer tok_live_998877'", "curl -H 'authorization: bearer ***'"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key *** used"),
            ("password=hunter22 user=bob", "password=*** user=bob"),
            (#"{"api_key": "k-123456"}"#, #"{"api_key": "***"}"#),
            ("s3 at https://u:pw123@minio:9000/b", "s3 at https://u:***@minio:9000/b"),
            ("epoch 3/10 mAP50=0.5", "epoch 3/10 mAP50=0.5"),
        ]
        for (text, masked) in cases { #expect(Redaction.redactText(text) == masked, "\(text)") }
    }

    @Test func aJobsSecretValuesAreMaskedWhereverTheyAreEchoed() {
        let config: JSONValue = [
            "minio": ["MINIO_SECRET_KEY": "hunter2-minio", "MINIO_ID": "me"],
            "mlflow": ["MLFLOW_TRACKING_URI": "http://alice:pa55word@mlflow:5000"],
            "extras": ["Authorization": "Bearer tok-abcdefgh", "minio_key": "k3y-value"],
            "metadata": ["content": "uses hunter2-minio and pa55word, token tok-abcdefgh, k3y-value"],
        ]
        let secrets = Redaction.secrets(of: config)
        let masker = SecretMasker(secrets: secrets)
        let stored = masker.mask(Redaction.redact(config))
        let text = "\(stored)"
        for secret in ["hunter2-minio", "pa55word", "tok-abcdefgh", "k3y-value"] { #expect(!text.contains(secret), "\(secret) leaked") }
        #expect(stored["minio"]?["MINIO_ID"] == "me")
        #expect(masker.mask("log: connecting with pa55word to minio") == "log: connecting with *** to minio")
        #expect(Redaction.restore(Redaction.redact(config), secrets: secrets)["extras"] == config["extras"])
    }
}

@Suite("Secret box")
struct SecretBoxTests {
    @Test func sealsAndOpensAndNamesTheKey() throws {
        let key = try SecretBox.Key(Data(base64Encoded: SecretBox.newKey())!)
        let box = try SecretBox(keys: [key])
        let sealed = box.seal("hunter2")
        #expect(sealed.hasPrefix("yard-sealed:v1:\(key.id):"))
        #expect(!sealed.contains("hunter2"))
        #expect(box.seal("hunter2") != sealed, "a fresh nonce every time")
        #expect(try box.openText(sealed) == "hunter2")
    }

    @Test func anotherKeyCannotOpenAndRotationKeepsOldKeysReadable() throws {
        let old = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "k"))
        let sealed = old.seal("s3cret")
        let other = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "k"))
        let error = try #require(throws: YardError.self) { try other.openText(sealed) }
        #expect(error.message.contains("not in the keyring"))
        let rotated = try SecretBox(keys: [other.keys[0], old.keys[0]])
        #expect(try rotated.openText(sealed) == "s3cret")
        #expect(rotated.seal("x").hasPrefix("yard-sealed:v1:\(other.keys[0].id):"))
        // Flip one bit of the ciphertext (after the 12-byte nonce): the tag no longer matches.
        let cut = try #require(sealed.lastIndex(of: ":"))
        var bytes = try #require(Data(base64Encoded: String(sealed[sealed.index(after: cut)...])))
        bytes[12] ^= 0x01
        let tampered = String(sealed[...cut]) + bytes.base64EncodedString()
        #expect(throws: YardError.self) { try rotated.openText(tampered) }
    }

    @Test(arguments: ["", "not base64!", "c2hvcnQ="])
    func badKeysAreOneLineErrors(text: String) {
        #expect(throws: YardError.self) { try SecretBox.parseKeys(text, source: "YARD_SECRET_KEY") }
    }
}
