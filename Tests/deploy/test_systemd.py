"""deploy/systemd: the units pass `systemd-analyze verify` with the built
yard in ExecStart's place (a warning counts as a failure), the worker's
instance is the GPU, the hardening is there, secrets come from an
EnvironmentFile, and the flags exist."""
import os
import shlex
import shutil
import subprocess
import tempfile
import unittest

from support import SECRET_NAME, path, read, unknown_flags, yard_bin

UNITS = ("yard-server.service", "yard-worker@.service")


def parse(name):
    """The unit as {section: {key: [values]}} (a key may repeat)."""
    sections = {}
    current = None
    for line in read("deploy", "systemd", name).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


class SystemdTests(unittest.TestCase):
    def test_the_units_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed; the other tests parse the units")
        with tempfile.TemporaryDirectory() as folder:
            for name in UNITS:
                text = read("deploy", "systemd", name).replace("/usr/local/bin/yard", yard_bin())
                with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
                    handle.write(text)
            for unit in ("yard-server.service", "yard-worker@0.service"):
                result = subprocess.run(["systemd-analyze", "verify", os.path.join(folder, unit)],
                                        capture_output=True, text=True, timeout=120, cwd=folder)
                self.assertEqual(result.returncode, 0, result.stderr)
                # Unknown keys and bad values are only warnings to systemd: not here.
                problems = [line for line in result.stderr.splitlines() if folder in line or unit in line]
                self.assertEqual(problems, [], result.stderr)

    def test_the_worker_instance_is_the_gpu(self):
        service = parse("yard-worker@.service")["Service"]
        self.assertIn("CUDA_VISIBLE_DEVICES=%i", service["Environment"])
        arguments = shlex.split(service["ExecStart"][0])
        self.assertEqual(arguments[1], "worker")
        self.assertEqual(arguments[arguments.index("--gpu") + 1], "%i")
        # Two instances never share a data dir (its tracking spool).
        data_dir = arguments[arguments.index("--data-dir") + 1]
        self.assertIn("%i", data_dir)
        self.assertIn(data_dir, service["ReadWritePaths"])

    def test_hardening_and_secrets_from_a_file(self):
        for name in UNITS:
            service = parse(name)["Service"]
            for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                               "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
                self.assertEqual(service.get(key), [value], f"{name}: {key}")
            self.assertNotIn("root", service.get("User", ["root"]), f"{name} runs as root")
            arguments = shlex.split(service["ExecStart"][0])
            data_dir = arguments[arguments.index("--data-dir") + 1]
            self.assertIn(data_dir, service["ReadWritePaths"], f"{name}: the data dir is read-only under ProtectSystem=strict")
            self.assertTrue(service["EnvironmentFile"][0].startswith("/etc/trainyard/"))
            for setting in service.get("Environment", []):
                self.assertNotRegex(setting.split("=", 1)[0], SECRET_NAME, f"{name}: a secret in Environment=")
            self.assertFalse([a for a in arguments if a.startswith(("--redis", "redis://"))], f"{name}: the Redis URL on the command line")

    def test_the_yard_flags_they_use_exist(self):
        for name in UNITS:
            arguments = shlex.split(parse(name)["Service"]["ExecStart"][0])
            self.assertEqual(arguments[0], "/usr/local/bin/yard")
            self.assertEqual(unknown_flags(arguments[1], arguments[2:]), [], name)


if __name__ == "__main__":
    unittest.main()
