import Foundation
import Testing
import YardDomain

/// The `sweeper:` block: every kind of search space, the defaults, and one
/// error naming the field for every bad spec (nothing is queued).
@Suite("Sweep spec")
struct SweepSpecTests {
    static func parse(_ yaml: String) throws -> JobConfig {
        try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntrain: {data: /d/data.yaml, epochs: 3, optimizer: SGD}\n" + yaml)
    }

    @Test func everyKindOfSearchSpaceAndEveryOption() throws {
        let config = try Self.parse("""
            sweeper:
              study_name: lr-study
              n_trials: 6
              direction: minimize
              sampler: RandomSampler
              seed: 7
              pruner: SuccessiveHalvingPruner
              fitness: metrics/mAP50-95(B)
              grace_period: 2
              reduction_factor: 4
              bootstrap_count: 1
              max_concurrent: 2
              retrain_best: true
              storage: postgresql://optuna:hunter2@db.example:5432/studies
              search_space:
                model: [choice, yolov8n.yaml, yolov8s.yaml]
                train:
                  lr0: [loguniform, 1.0e-5, 1.0]
                  momentum: [uniform, 0.6, 0.98]
                  imgsz: [choice, 320, 640]
                  warmup_epochs: [range, 0, 3, 0.5]
                  batch: [int, 8, 32]
                  cos_lr: [choice, true, false]
            """)
        let spec = try #require(config.sweep)
        #expect(spec.isSweep, "a search space makes it a sweep")
        #expect(spec.studyName == "lr-study" && spec.trials == 6 && spec.direction == .minimize)
        #expect(spec.sampler == .random && spec.seed == 7 && spec.pruner == .successiveHalving)
        #expect(spec.fitness == "metrics/mAP50-95(B)" && spec.gracePeriod == 2 && spec.maxConcurrent == 2 && spec.retrainBest)
        #expect(spec.reductionFactor == 4 && spec.bootstrapCount == 1)
        #expect(spec.storage == "postgresql://optuna:hunter2@db.example:5432/studies")
        #expect(!"\(Redaction.redact(config.json))".contains("hunter2"), "a storage URL's password is a secret")
        #expect(spec.parameters.map(\.name) == ["model", "train.batch", "train.cos_lr", "train.imgsz", "train.lr0", "train.momentum", "train.warmup_epochs"])
        let byName = Dictionary(uniqueKeysWithValues: spec.parameters.map { ($0.name, $0.distribution) })
        #expect(byName["model"] == .choice(["yolov8n.yaml", "yolov8s.yaml"]))
        #expect(byName["train.lr0"] == .logUniform(1e-5, 1.0))
        #expect(byName["train.momentum"] == .uniform(0.6, 0.98))
        #expect(byName["train.imgsz"] == .choice([.int(320), .int(640)]))
        #expect(byName["train.warmup_epochs"] == .range(0, 3, step: 0.5))
        #expect(byName["train.batch"] == .int(8, 32))
        #expect(byName["train.warmup_epochs"]?.gridValues == [0, 0.5, 1, 1.5, 2, 2.5, 3].map { JSONValue.double($0) })
        #expect(byName["train.batch"]?.gridValues?.count == 25)
        #expect(byName["train.lr0"]?.gridValues == nil)
    }

    @Test func defaultsAndTheSeedsTuneFlag() throws {
        // Seed 001's first example: a sweeper block with tune: false runs as one job.
        let plain = try #require(try Self.parse("sweeper: {study_name: yolo_optimization, n_trials: 10, tune: false, grace_period: 5}").sweep)
        #expect(!plain.isSweep)
        #expect(plain.gracePeriod == 5)
        // Its second: tune: true with no search space searches what Ultralytics' tuner would.
        let tuned = try #require(try Self.parse("""
            sweeper: {study_name: yolo_hyperopt, n_trials: 50, tune: true, grace_period: 10, algorithm: optuna, direction: maximize, sampler: TPESampler}
            """).sweep)
        #expect(tuned.isSweep && tuned.trials == 50 && tuned.sampler == .tpe && tuned.direction == .maximize)
        #expect(tuned.parameters == SweepSpec.defaultSpace)
        #expect(tuned.parameters.first == SweepSpec.Parameter(name: "train.lr0", distribution: .logUniform(1e-5, 1e-2)))
        // Nothing said: TPE, maximize `fitness`, median pruning, one at a time.
        let bare = try #require(try Self.parse("sweeper: {search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}").sweep)
        #expect(bare.isSweep && bare.trials == 10 && bare.sampler == .tpe && bare.pruner == .median)
        #expect(bare.fitness == "fitness" && bare.maxConcurrent == 1 && bare.gracePeriod == 1 && !bare.retrainBest && bare.seed == nil)
        #expect(bare.reductionFactor == nil && bare.bootstrapCount == nil, "Optuna's own defaults")
        #expect(try Self.parse("sweeper: {tune: false, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}").sweep?.isSweep == false)
    }

    @Test(arguments: [
        ("sweeper: [a]", "sweeper", "must be a mapping"),
        ("sweeper: {trials: 3}", "sweeper.trials", "unknown key"),
        ("sweeper: {n_trials: 0}", "sweeper.n_trials", "at least 1"),
        ("sweeper: {n_trials: two}", "sweeper.n_trials", "integer"),
        ("sweeper: {direction: up}", "sweeper.direction", "maximize, minimize"),
        ("sweeper: {sampler: Bayes}", "sweeper.sampler", "TPESampler"),
        ("sweeper: {pruner: Patient}", "sweeper.pruner", "MedianPruner"),
        ("sweeper: {seed: -1}", "sweeper.seed", "at least 0"),
        ("sweeper: {grace_period: 1.5}", "sweeper.grace_period", "integer"),
        ("sweeper: {max_concurrent: 0}", "sweeper.max_concurrent", "at least 1"),
        ("sweeper: {pruner: SuccessiveHalvingPruner, reduction_factor: 1}", "sweeper.reduction_factor", "at least 2"),
        ("sweeper: {pruner: HyperbandPruner, reduction_factor: 1000}", "sweeper.reduction_factor", "at most 100"),
        ("sweeper: {reduction_factor: 3}", "sweeper.reduction_factor", "the pruner is MedianPruner"),
        ("sweeper: {pruner: none, bootstrap_count: 1}", "sweeper.bootstrap_count", "the pruner is none"),
        ("sweeper: {pruner: HyperbandPruner, bootstrap_count: 1}", "sweeper.bootstrap_count", "only SuccessiveHalvingPruner"),
        ("sweeper: {pruner: SuccessiveHalvingPruner, bootstrap_count: -1}", "sweeper.bootstrap_count", "at least 0"),
        ("sweeper: {pruner: SuccessiveHalvingPruner, n_trials: 4, bootstrap_count: 4}", "sweeper.bootstrap_count", "below n_trials"),
        ("sweeper: {fitness: ''}", "sweeper.fitness", "non-empty"),
        ("sweeper: {tune: yes please}", "sweeper.tune", "true or false"),
        ("sweeper: {retrain_best: 1}", "sweeper.retrain_best", "true or false"),
        ("sweeper: {algorithm: hyperopt}", "sweeper.algorithm", "optuna"),
        ("sweeper: {study_name: '../etc'}", "sweeper.study_name", "letters, digits"),
        ("sweeper: {storage: 'file:///tmp/x'}", "sweeper.storage", "Optuna storage server URL"),
        ("sweeper: {storage: 'sqlite:////etc/cron.d/x'}", "sweeper.storage", "the server's own SQLite file"),
        ("sweeper: {search_space: [lr0]}", "sweeper.search_space", "must be a mapping"),
        ("sweeper: {search_space: {val: {conf: [uniform, 0, 1]}}}", "sweeper.search_space.val", "only train: keys and model"),
        ("sweeper: {search_space: {train: [lr0]}}", "sweeper.search_space.train", "mapping of train keys"),
        ("sweeper: {search_space: {train: {data: [choice, a.yaml, b.yaml]}}}", "sweeper.search_space.train.data", "set by Trainyard"),
        ("sweeper: {search_space: {train: {lr0: 0.01}}}", "sweeper.search_space.train.lr0", "[choice, a, b, ...]"),
        ("sweeper: {search_space: {train: {lr0: [normal, 0, 1]}}}", "sweeper.search_space.train.lr0", "\"normal\" is not a kind"),
        ("sweeper: {search_space: {train: {lr0: [uniform, 0.1]}}}", "sweeper.search_space.train.lr0", "takes 2 numbers, got 1"),
        ("sweeper: {search_space: {train: {lr0: [uniform, a, 1]}}}", "sweeper.search_space.train.lr0", "takes numbers"),
        ("sweeper: {search_space: {train: {lr0: [uniform, 1, 0.1]}}}", "sweeper.search_space.train.lr0", "must be below the high end"),
        ("sweeper: {search_space: {train: {lr0: [uniform, .nan, 1]}}}", "sweeper.search_space.train.lr0", "takes numbers"),
        ("sweeper: {search_space: {train: {lr0: [loguniform, 0, 0.1]}}}", "sweeper.search_space.train.lr0", "needs 0 < lo"),
        ("sweeper: {search_space: {train: {mosaic: [range, 0, 1]}}}", "sweeper.search_space.train.mosaic", "takes 3 numbers"),
        ("sweeper: {search_space: {train: {mosaic: [range, 0, 1, 0]}}}", "sweeper.search_space.train.mosaic", "step must be a number above 0"),
        ("sweeper: {search_space: {train: {mosaic: [range, 0, 1, 2]}}}", "sweeper.search_space.train.mosaic", "wider than the range"),
        ("sweeper: {search_space: {train: {mosaic: [range, 0, 1, 0.0000001]}}}", "sweeper.search_space.train.mosaic", "million"),
        ("sweeper: {search_space: {train: {batch: [int, 8.5, 32]}}}", "sweeper.search_space.train.batch", "takes integers"),
        ("sweeper: {search_space: {train: {batch: [int, 32, 32]}}}", "sweeper.search_space.train.batch", "below the high end"),
        ("sweeper: {search_space: {train: {imgsz: [choice]}}}", "sweeper.search_space.train.imgsz", "at least one value"),
        ("sweeper: {search_space: {train: {imgsz: [choice, 320, 320]}}}", "sweeper.search_space.train.imgsz", "listed twice"),
        // One value to Optuna, and 1.0 is read back from the store as 1: accepted, it failed every later pass.
        ("sweeper: {search_space: {train: {lr0: [choice, 1, 1.0]}}}", "sweeper.search_space.train.lr0", "listed twice (1 and 1.0 are one value to Optuna)"),
        ("sweeper: {search_space: {train: {cos_lr: [choice, 1, true]}}}", "sweeper.search_space.train.cos_lr", "listed twice"),
        ("sweeper: {search_space: {train: {lr0: [choice, .inf, 0]}}}", "sweeper.search_space.train.lr0", "finite numbers"),
        ("sweeper: {search_space: {train: {imgsz: [choice, [1, 2]]}}}", "sweeper.search_space.train.imgsz", "strings, numbers or booleans"),
        ("sweeper: {search_space: {model: [choice, 1, 2]}}", "sweeper.search_space.model", "model names"),
        ("sweeper: {search_space: {model: [uniform, 0, 1]}}", "sweeper.search_space.model", "[choice, model"),
        ("sweeper: {sampler: GridSampler, search_space: {train: {lr0: [loguniform, 1.0e-5, 0.1]}}}", "sweeper.search_space.train.lr0", "GridSampler needs finite values"),
        // Hostile sizes: refused without listing a trillion values, or queueing a million jobs.
        ("sweeper: {sampler: GridSampler, search_space: {train: {batch: [int, 0, 1000000000000]}}}", "sweeper.search_space.train.batch", "more than a million points"),
        ("sweeper: {sampler: GridSampler, search_space: {train: {batch: [int, -9223372036854775807, 9223372036854775807]}}}", "sweeper.search_space.train.batch", "more than a million points"),
        ("sweeper: {sampler: GridSampler, search_space: {train: {a: [int, 0, 999], b: [int, 0, 999], c: [int, 0, 9]}}}", "sweeper.search_space.train.c", "more than a million points"),
        ("sweeper: {sampler: GridSampler, search_space: {train: {mosaic: [range, 0, 1e300, 1e-300]}}}", "sweeper.search_space.train.mosaic", "million"),
        ("sweeper: {sampler: GridSampler, search_space: {train: {mosaic: [range, -1.7e308, 1.7e308, 1.0e300]}}}", "sweeper.search_space.train.mosaic", "million"),
        ("sweeper: {n_trials: 1000000, search_space: {train: {mosaic: [uniform, 0, 1]}}}", "sweeper.n_trials", "at most 10000"),
        ("sweeper: {max_concurrent: 100000, search_space: {train: {mosaic: [uniform, 0, 1]}}}", "sweeper.max_concurrent", "at most 256"),
    ])
    func aBadSpecIsOneErrorNamingItsField(yaml: String, field: String, says: String) {
        do {
            _ = try Self.parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch let error as YardError {
            #expect(error.field == field, "\(yaml): \(error)")
            #expect(error.message.contains(says), "\(yaml): \(error)")
            #expect(!error.message.contains("\n"))
        } catch {
            Issue.record("\(yaml): \(error)")
        }
    }

    /// A grid too large to count in an Int (an infinite step count, or a span
    /// that overflows a Double) is counted as more than any grid allowed,
    /// never converted with Int(Double), which traps and takes the server down.
    @Test func aHugeGridIsCountedWithoutTrapping() {
        typealias D = SweepSpec.Distribution
        for huge: D in [.range(0, 1e300, step: 1e-300), .range(-1.7e308, 1.7e308, step: 1), .range(0, 1e18, step: 1), .int(Int.min, Int.max)] {
            #expect(huge.gridSize == Int.max, "\(huge.syntax)")
            #expect(huge.gridValues == nil, "\(huge.syntax): never listed")
        }
        #expect(D.range(0, 1, step: 0.25).gridSize == 5)
        #expect(D.range(0, 1, step: 0.25).gridValues == [0, 0.25, 0.5, 0.75, 1].map { JSONValue.double($0) })
    }

    /// Whatever parse accepts, it accepts again from the stored form (JSON,
    /// where 1.0 reads back as 1): every pass of a sweep validates that.
    @Test func anAcceptedSpecIsAcceptedAgainFromItsStoredForm() throws {
        let config = try Self.parse("sweeper: {search_space: {train: {lr0: [choice, 0.5, 1.0, 2], imgsz: [choice, 320.0, 640]}, model: [choice, a.yaml, b.yaml]}}")
        let stored = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(config.json))
        let again = try JobConfigParser { _ in true }.validate(try #require(stored.objectValue))
        #expect(again.sweep?.parameters.map(\.name) == config.sweep?.parameters.map(\.name))
    }

    /// Ultralytics ignores lr0 and momentum with optimizer auto (its
    /// default): a sweep over them is refused until an optimizer is named.
    @Test func aSweepOverTheLearningRateNeedsAnOptimizer() throws {
        let parser = JobConfigParser { _ in true }
        for train in ["{data: /d.yaml}", "{data: /d.yaml, optimizer: auto}"] {
            #expect(throws: YardError.self) {
                _ = try parser.parse("model: m.yaml\ntrain: \(train)\nsweeper: {search_space: {train: {lr0: [uniform, 0.001, 0.1]}}}")
            }
            #expect(throws: YardError.self, "tune: true searches Ultralytics' space, lr0 included") {
                _ = try parser.parse("model: m.yaml\ntrain: \(train)\nsweeper: {tune: true}")
            }
            _ = try parser.parse("model: m.yaml\ntrain: \(train)\nsweeper: {search_space: {train: {mosaic: [uniform, 0, 1]}}}")
            _ = try parser.parse("model: m.yaml\ntrain: \(train)\nsweeper: {tune: false, search_space: {train: {lr0: [uniform, 0.001, 0.1]}}}")
        }
        #expect {
            _ = try parser.parse("model: m.yaml\ntrain: {data: /d.yaml}\nsweeper: {search_space: {train: {momentum: [uniform, 0.6, 0.9]}}}")
        } throws: { error in
            (error as? YardError)?.field == "train.optimizer" && "\(error)".contains("set train.optimizer")
        }
        _ = try parser.parse("model: m.yaml\ntrain: {data: /d.yaml, optimizer: AdamW}\nsweeper: {tune: true}")
    }

    /// A trial is the config with the sampled values written in and the
    /// sweep turned off; everything else is the same.
    @Test func aTrialsConfigCarriesItsValues() throws {
        let config = try Self.parse("sweeper: {n_trials: 2, search_space: {model: [choice, yolov8n.yaml, yolov8s.yaml], train: {lr0: [uniform, 0.001, 0.01]}}}")
        let trial = SweepSpec.trialDocument(config.document, values: ["model": "yolov8s.yaml", "train.lr0": 0.005])
        let parsed = try JobConfigParser { _ in true }.validate(trial)
        #expect(parsed.model == "yolov8s.yaml")
        #expect(parsed.train["lr0"] == .double(0.005))
        #expect(parsed.train["epochs"] == .int(3) && parsed.train["data"] == .string("/d/data.yaml"))
        #expect(parsed.sweep?.isSweep == false)
    }
}
