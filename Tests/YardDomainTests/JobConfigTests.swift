import Testing
import YardDomain

@Suite("Job config parsing and validation")
struct JobConfigTests {
    /// Only these paths "exist".
    static func parser(existing: Set<String> = ["/data/demo/data.yaml", "/cfg/data.yaml", "/cfg/weights.pt"], base: String? = "/cfg") -> JobConfigParser {
        JobConfigParser(baseDirectory: base) { existing.contains($0) }
    }

    /// The example config from the wyolo seed (its README), unchanged but for the data path.
    static let seedExample = """
        # Model configuration
        model: "yolov8n.pt"
        type: "yolo"
        task_id: "training_session_001"

        # Training parameters
        train:
          data: "/path/to/dataset.yaml"
          epochs: 100
          imgsz: 640
          batch: -1  # Auto-optimize
          verbose: true
          plots: true

        # MLOps configuration
        mlflow:
          MLFLOW_TRACKING_URI: "http://localhost:5000"
        minio:
          MINIO_ENDPOINT: "http://localhost:9000"
          MINIO_ID: "mlflow"
          MINIO_SECRET_KEY: "password"

        # Redis queue configuration
        redis:
          REDIS_HOST: "localhost"
          REDIS_PORT: 6379
          REDIS_DB: 0
          TOPIC: "training_queue"

        # Hyperparameter optimization
        sweeper:
          study_name: "yolo_optimization"
          n_trials: 10
          tune: false
          grace_period: 5
        """

    @Test func seedExampleParsesWhenItsDataExists() throws {
        let config = try Self.parser(existing: ["/path/to/dataset.yaml"]).parse(Self.seedExample)
        #expect(config.model == "yolov8n.pt")
        #expect(config.type == .yolo)
        #expect(config.taskID == "training_session_001")
        #expect(config.epochs == 100)
        #expect(config.train["batch"] == .int(-1))
        #expect(config.train["verbose"] == .bool(true))
        #expect(config.experiment == "yolo_optimization")
        #expect(config.document["redis"]?["REDIS_PORT"] == .int(6379))
    }

    @Test func seedExampleNamesItsMissingDataPath() {
        #expect(throws: YardError.self) { try Self.parser().parse(Self.seedExample) }
        do { _ = try Self.parser().parse(Self.seedExample) } catch {
            #expect(error.field == "train.data")
            #expect(error.message.contains("/path/to/dataset.yaml does not exist"))
        }
    }

    @Test func relativePathsResolveAgainstTheConfigFolder() throws {
        let config = try Self.parser().parse("model: weights.pt\ntrain: {data: data.yaml, epochs: 2}")
        #expect(config.data == "/cfg/data.yaml")
        #expect(config.model == "/cfg/weights.pt")
    }

    @Test func builtInModelNamesStayAsTheyAre() throws {
        let config = try Self.parser().parse("model: yolov8n.yaml\ntype: rtdetr\ntrain: {data: /data/demo/data.yaml}")
        #expect(config.model == "yolov8n.yaml")
        #expect(config.type == .rtdetr)
        #expect(config.experiment == "default")
    }

    @Test func jsonIsAcceptedToo() throws {
        let config = try Self.parser().parse(#"{"model": "yolov8n.yaml", "experiment": "e1", "train": {"data": "/data/demo/data.yaml", "epochs": 3}}"#)
        #expect(config.experiment == "e1")
        #expect(config.epochs == 3)
    }

    @Test(arguments: [
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml}\nbogus: 1", "bogus", "unknown top-level key"),
        ("train: {data: /data/demo/data.yaml}", "model", "missing"),
        ("model: 3\ntrain: {data: /data/demo/data.yaml}", "model", "must be a non-empty string"),
        ("model: m.yaml", "train", "missing"),
        ("model: m.yaml\ntrain: [1, 2]", "train", "must be a mapping"),
        ("model: m.yaml\ntrain: {epochs: 3}", "train.data", "missing"),
        ("model: m.yaml\ntrain: {data: 5}", "train.data", "must be a path string"),
        ("model: m.yaml\ntrain: {data: nowhere.yaml}", "train.data", "does not exist"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, epochs: 0}", "train.epochs", "positive integer"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, epochs: -3}", "train.epochs", "positive integer"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, epochs: ten}", "train.epochs", "positive integer"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, imgsz: -64}", "train.imgsz", "positive integer"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, batch: 0}", "train.batch", "-1 for auto"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, project: /tmp}", "train.project", "remove train.project"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, resume: true}", "train.resume", "yard resume"),
        ("model: m.yaml\ntype: yolox\ntrain: {data: /data/demo/data.yaml}", "type", "yolo, rtdetr"),
        ("model: m.yaml\ntask_id: ../../etc\ntrain: {data: /data/demo/data.yaml}", "task_id", "letters, digits"),
        ("model: m.yaml\nmlflow: nope\ntrain: {data: /data/demo/data.yaml}", "mlflow", "must be a mapping"),
        ("model: m.yaml\nsweeper: {n_trials: 0}\ntrain: {data: /data/demo/data.yaml}", "sweeper.n_trials", "integer of at least 1"),
        ("model: m.yaml\ntrain: {data: /data/demo/data.yaml, epochs: 1, epochs: 2}", "config", "duplicated key"),
        ("model: m.yaml\noom_retry: maybe\ntrain: {data: /data/demo/data.yaml}", "oom_retry", "must be true or false"),
        ("model: [unclosed\n", "config", "not valid YAML"),
        ("", "config", "empty"),
        ("- a\n- b", "config", "must be a mapping"),
    ])
    func badConfigsNameTheField(text: String, field: String, fragment: String) {
        do {
            _ = try Self.parser().parse(text)
            Issue.record("expected an error for \(field)")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.field == field)
            #expect(error.message.contains(fragment), "\(error.message)")
            #expect(!error.message.contains("\n"), "errors are one line")
        }
    }

    @Test func s3DataIsNotCheckedLocally() throws {
        let config = try Self.parser().parse("model: m.yaml\ntrain: {data: s3://bucket/prefix}")
        #expect(config.data == "s3://bucket/prefix")
    }

    @Test func integerTaskIDsBecomeStrings() throws {
        let config = try Self.parser().parse("model: m.yaml\ntask_id: 42\ntrain: {data: /data/demo/data.yaml}")
        #expect(config.taskID == "42")
    }
}

@Suite("deploy: section")
struct DeploySpecTests {
    static let parser = JobConfigParser { _ in true }

    @Test func defaultsAndEveryBadValueNamedByItsField() throws {
        let spec = try DeploySpec.parse(["model": "det"])
        #expect(spec.alias == "production" && spec.metric == "metrics/mAP50-95(B)" && spec.minImprovement == 0 && spec.direction == .maximize)
        #expect(spec.beats(0.51, 0.5) && !spec.beats(0.5, 0.5))
        let minimize = try DeploySpec.parse(["model": "det", "direction": "minimize", "min_improvement": 0.1, "metric": "val/box_loss"])
        #expect(minimize.beats(1.0, 1.2) && !minimize.beats(1.15, 1.2))
        let cases: [(String, String)] = [
            ("deploy: detector", "deploy: must be a mapping"),
            ("deploy: {alias: production}", "deploy.model: missing"),
            ("deploy: {model: ../x}", "deploy.model: \"../x\" must be"),
            ("deploy: {model: d, min_improvement: -1}", "deploy.min_improvement: must be a number of at least 0"),
            ("deploy: {model: d, min_improvement: lots}", "deploy.min_improvement"),
            ("deploy: {model: d, direction: up}", "deploy.direction: must be maximize or minimize"),
            ("deploy: {model: d, alias: 'a b'}", "deploy.alias"),
            ("deploy: {model: d, promote: true}", "deploy.promote: unknown key"),
        ]
        for (yaml, message) in cases {
            #expect(throws: YardError.self, "\(yaml)") { try Self.parser.parse("model: yolov8n.yaml\ntrain: {data: /d.yaml}\n" + yaml) }
            do { _ = try Self.parser.parse("model: yolov8n.yaml\ntrain: {data: /d.yaml}\n" + yaml) } catch {
                #expect(error.message.hasPrefix(message), "\(yaml): \(error.message)")
            }
        }
        #expect(try Self.parser.parse("model: yolov8n.yaml\ntrain: {data: /d.yaml}\ndeploy: {model: det, alias: staging}").json["deploy"]?["alias"] == "staging")
    }
}
