"""deploy/compose.yaml: the services, the GPU reservation, Redis with AOF and
a password from the environment, health checks, and no secret written in
it. Linted, not run: no container runtime here can pull the images."""
import re
import subprocess
import unittest
import urllib.parse

from support import SECRET_NAME, load_yaml, path, read, unknown_flags

REF = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def strip_refs(value):
    return REF.sub("", value)


class ComposeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_yaml("deploy", "compose.yaml")
        cls.services = cls.compose["services"]

    def test_the_services_are_there(self):
        self.assertTrue({"server", "worker", "redis", "postgres", "mlflow", "minio", "minio-bucket"} <= set(self.services),
                        sorted(self.services))

    def test_workers_reserve_nvidia_gpus_and_can_be_scaled(self):
        worker = self.services["worker"]
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        self.assertEqual(len(devices), 1)
        self.assertEqual(devices[0]["driver"], "nvidia")
        self.assertIn("gpu", devices[0]["capabilities"])
        # nvidia-smi (the entrypoint's GPU list, the heartbeats' GPU stats) needs `utility`.
        self.assertIn("utility", devices[0]["capabilities"])
        # `--scale worker=N` fails with a fixed name or a host port.
        self.assertNotIn("container_name", worker)
        self.assertNotIn("ports", worker)
        # Replicas share the GPU locks (one worker per GPU) on a shared volume.
        mounts = {volume.split(":")[1] for volume in worker["volumes"]}
        self.assertIn("/run/trainyard-gpus", mounts)
        entrypoint = read("deploy", "docker", "worker-entrypoint.sh")
        self.assertIn("LOCKS=${GPU_LOCKS:-/run/trainyard-gpus}", entrypoint)

    def test_redis_keeps_an_append_only_file_and_takes_its_password_from_the_environment(self):
        redis = self.services["redis"]
        command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
        self.assertRegex(command, r"--appendonly yes")
        self.assertIn("requirepass", command)
        self.assertIn("$$REDIS_PASSWORD", command)  # expanded by the container's shell, not written here
        self.assertRegex(redis["environment"]["REDIS_PASSWORD"], r"^\$\{REDIS_PASSWORD:\?")
        self.assertIn("/data", " ".join(redis["volumes"]))
        # The server and the workers reach it with the same password.
        for name in ("server", "worker"):
            url = self.services[name]["environment"]["YARD_REDIS_URL"]
            self.assertRegex(url, r"^redis://:\$\{REDIS_PASSWORD[^}]*\}@redis:6379/")

    def test_health_checks_use_health_and_ready(self):
        self.assertIn("/ready", " ".join(self.services["server"]["healthcheck"]["test"]))
        server_image = read("deploy", "docker", "server.Dockerfile")
        self.assertRegex(server_image, r"HEALTHCHECK[^\n]*\n\s*CMD curl -fsS http://127\.0\.0\.1:8787/health")
        for name, service in self.services.items():
            if name == "minio-bucket":
                self.assertEqual(service.get("restart"), "no", "the bucket job runs once")
                continue
            self.assertIn("healthcheck", service, f"{name} has no healthcheck")
        for name, service in self.services.items():
            for dependency, condition in (service.get("depends_on") or {}).items():
                self.assertIn(dependency, self.services, f"{name} depends on unknown {dependency}")
                if condition["condition"] == "service_healthy":
                    self.assertIn("healthcheck", self.services[dependency], f"{name} waits for {dependency} to be healthy, which has no check")

    def test_mlflow_runs_on_postgres_with_artifacts_in_minio(self):
        command = " ".join(self.services["mlflow"]["command"])
        self.assertIn("--backend-store-uri \"postgresql://", command)
        self.assertIn("--serve-artifacts", command)
        self.assertIn("s3://mlflow", command)
        bucket = " ".join(self.services["minio-bucket"]["entrypoint"])
        self.assertIn("mc mb --ignore-existing local/trainyard", bucket)
        self.assertIn("mc mb --ignore-existing local/mlflow", bucket)
        self.assertEqual(self.services["server"]["environment"]["MINIO_BUCKET"], "trainyard")
        # The MLflow image is the version the tests run against.
        pinned = re.search(r"^mlflow==(\S+)$", read("Tests", "services", "requirements.txt"), re.M).group(1)
        self.assertIn(f"ghcr.io/mlflow/mlflow:v{pinned}", read("deploy", "docker", "mlflow.Dockerfile"))
        self.assertTrue(self.services["mlflow"]["image"].endswith(":" + pinned))

    def test_no_secret_is_written_in_it(self):
        required = set()
        for name, service in self.services.items():
            for key, value in (service.get("environment") or {}).items():
                value = str(value)
                required |= set(REF.findall(value))
                if not SECRET_NAME.search(key):
                    continue
                rest = strip_refs(value)
                if "://" in rest:
                    parsed = urllib.parse.urlsplit(rest)
                    self.assertFalse(parsed.password, f"{name}: {key} has a password written in its URL")
                else:
                    self.assertEqual(rest, "", f"{name}: {key} is written in compose.yaml, not taken from the environment")
        # Every variable it needs is in env.example, which holds no values.
        example = read("deploy", "env.example")
        listed = dict(re.findall(r"^#?([A-Z0-9_]+)=(.*)$", example, re.M))
        for variable in required:
            self.assertIn(variable, listed, f"compose.yaml needs ${variable}; list it in deploy/env.example")
        for variable, value in re.findall(r"^([A-Z0-9_]+)=(.*)$", example, re.M):
            self.assertEqual(value, "", f"deploy/env.example gives {variable} a value")
        # The filled-in copy compose reads (deploy/.env) is never committed.
        ignored = subprocess.run(["git", "-C", path(), "check-ignore", "-q", "deploy/.env"], capture_output=True)
        self.assertEqual(ignored.returncode, 0, "deploy/.env is not in .gitignore")

    def test_builds_and_volumes_name_what_exists(self):
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if not source.startswith(("/", ".", "$")):
                    self.assertIn(source, self.compose["volumes"], f"{name} mounts undeclared volume {source}")
            if "build" in service:
                context = path("deploy", service["build"]["context"])
                dockerfile = path("deploy", service["build"]["context"], service["build"]["dockerfile"])
                with open(dockerfile, encoding="utf-8"):
                    pass
                self.assertTrue(context.startswith(path()), context)

    def test_the_yard_flags_it_uses_exist(self):
        server = self.services["server"]["command"]
        self.assertEqual(server[0], "server")
        self.assertEqual(unknown_flags("server", server[1:]), [])
        # The worker's command is passed on to `yard worker` by its entrypoint.
        self.assertEqual(unknown_flags("worker", self.services["worker"]["command"]), [])


if __name__ == "__main__":
    unittest.main()
