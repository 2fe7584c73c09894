import Foundation
import Testing
import YardDomain
import YardTestSupport
import YardWorker

/// The nvidia-smi reader, with stub nvidia-smi scripts on a private PATH
/// (no GPU here): real output of two GPUs, unsupported fields, a driver
/// that fails, one that hangs, and none installed.
@Suite("GPU stats from nvidia-smi")
struct GPUStatsTests {
    func stub(_ script: String) throws -> (NvidiaSMI, TemporaryDirectory) {
        let dir = try TemporaryDirectory()
        let path = try dir.write("bin/nvidia-smi", "#!/bin/sh\n" + script + "\n")
        chmod(path, 0o755)
        // A process another test forks while the script is being written holds
        // its write descriptor until it execs: running the script then fails with
        // ETXTBSY ("Text file busy"). Such children exec within milliseconds.
        usleep(100_000)
        return (NvidiaSMI(searchPath: dir.file("bin"), timeout: .milliseconds(500)), dir)
    }

    @Test func twoGPUsAreParsedAndTheQueryIsTheDocumentedOne() async throws {
        let (smi, dir) = try stub("""
            [ "$*" = "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu --format=csv,noheader,nounits" ] || { echo "unexpected arguments: $*" >&2; exit 9; }
            echo "0, GPU-5f1c2a3b-aaaa-bbbb-cccc-000000000001, NVIDIA H100 80GB HBM3, 81559, 1023, 87, 64"
            echo "1, GPU-5f1c2a3b-aaaa-bbbb-cccc-000000000002, NVIDIA H100 80GB HBM3, 81559, 0, 0, 31"
            """)
        defer { dir.remove() }
        let gpus = try #require(try await smi.sample())
        #expect(gpus == [
            GPUStats(index: 0, uuid: "GPU-5f1c2a3b-aaaa-bbbb-cccc-000000000001", name: "NVIDIA H100 80GB HBM3",
                     memoryTotalMiB: 81559, memoryUsedMiB: 1023, utilizationPercent: 87, temperatureC: 64),
            GPUStats(index: 1, uuid: "GPU-5f1c2a3b-aaaa-bbbb-cccc-000000000002", name: "NVIDIA H100 80GB HBM3",
                     memoryTotalMiB: 81559, memoryUsedMiB: 0, utilizationPercent: 0, temperatureC: 31),
        ])
    }

    @Test func unsupportedFieldsAreNil() throws {
        let gpus = try NvidiaSMI.parse("0, [N/A], Tesla K80, 11441, [N/A], [Not Supported], 40\n\n")
        #expect(gpus == [GPUStats(index: 0, uuid: nil, name: "Tesla K80", memoryTotalMiB: 11441, temperatureC: 40)])
    }

    @Test func outputThatIsNotTheQuerySaysSo() {
        #expect(throws: NvidiaSMI.Failure.self) { try NvidiaSMI.parse("No devices were found") }
        #expect(throws: NvidiaSMI.Failure.self) { try NvidiaSMI.parse("0, uuid, name, 1, 2") }
    }

    @Test func aFailingDriverGivesItsFirstLine() async throws {
        let (smi, dir) = try stub("""
            echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
            exit 9
            """)
        defer { dir.remove() }
        let error = await #expect(throws: NvidiaSMI.Failure.self) { try await smi.sample() }
        #expect(error?.description.hasPrefix("nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate") == true)
    }

    @Test func aHangingNvidiaSMIIsKilledAtTheTimeout() async throws {
        let (smi, dir) = try stub("sleep 60")
        defer { dir.remove() }
        let started = ContinuousClock.now
        let error = await #expect(throws: NvidiaSMI.Failure.self) { try await smi.sample() }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(error?.description.contains("did not answer") == true)
    }

    @Test func noNvidiaSMIMeansNoGPU() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        #expect(try await NvidiaSMI(searchPath: dir.path).sample() == nil)
    }
}
