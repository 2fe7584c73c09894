"""deploy/docker: the Dockerfiles parsed (FROM first, each COPY naming a file
that exists or the archive scripts/package.sh writes, and let in by the
Dockerfile's .dockerignore; the flags exist), and the worker's entrypoint
run for real: replicas on one host take different GPUs through flock, a
dead worker's GPU is taken again, one too many is refused."""
import fnmatch
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import tempfile
import time
import unittest

from support import archive_name, path, read, unknown_flags, version

DOCKERFILES = ("server.Dockerfile", "worker.Dockerfile", "mlflow.Dockerfile")


def instructions(name):
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for line in read("deploy", "docker", name).splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        current = ""
    return lines


def admitted(ignore_file, source):
    """Whether a .dockerignore (last matching rule wins) lets `source` into the context."""
    keep = True
    for rule in read(*ignore_file).splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        if fnmatch.fnmatch(source, rule.lstrip("!")):
            keep = negate
    return keep


class DockerfileTests(unittest.TestCase):
    def test_each_starts_from_a_pinned_image(self):
        for name in DOCKERFILES:
            steps = instructions(name)
            first = [word for word, _ in steps if word not in ("ARG",)][0]
            self.assertEqual(first, "FROM", name)
            for word, rest in steps:
                if word == "FROM":
                    image = rest.split()[0]
                    self.assertRegex(image, r":[\w.-]+$", f"{name}: {image} has no tag")
                    self.assertNotRegex(image, r":latest$", f"{name}: {image} is :latest")
        worker_base = [rest for word, rest in instructions("worker.Dockerfile") if word == "FROM"][0]
        self.assertTrue(worker_base.startswith("nvidia/cuda:"), worker_base)

    def test_copies_name_files_that_exist_and_the_context_lets_in(self):
        archive = archive_name() + ".tar.gz"
        for name in ("server.Dockerfile", "worker.Dockerfile"):
            arguments = {}
            for word, rest in instructions(name):
                if word == "ARG":
                    arguments[rest.split("=")[0]] = version()  # the build passes the version (compose: TRAINYARD_VERSION)
                if word not in ("COPY", "ADD"):
                    continue
                parts = [part for part in shlex.split(rest) if not part.startswith("--")]
                for source in parts[:-1]:
                    source = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], source)
                    if source.startswith("dist/"):
                        # scripts/package.sh's output: its name, for this version.
                        self.assertEqual(source, "dist/" + archive, name)
                    else:
                        self.assertTrue(os.path.isfile(path(source)), f"{name}: COPY {source}: no such file")
                    self.assertTrue(admitted(("deploy", "docker", name + ".dockerignore"), source),
                                    f"{name}: {source} is left out of the context by its .dockerignore")
            self.assertFalse(admitted(("deploy", "docker", name + ".dockerignore"), "Sources/yard/main.swift"))
            # The archive is unpacked and installed by its own install.sh.
            runs = " ".join(rest for word, rest in instructions(name) if word == "RUN")
            self.assertIn(f"/tmp/trainyard-${{TRAINYARD_VERSION}}-linux-x86_64/install.sh --prefix /usr/local", runs)
        self.assertIn("TRAINYARD_VERSION: ${TRAINYARD_VERSION", read("deploy", "compose.yaml"))

    def test_the_yard_flags_they_use_exist(self):
        for word, rest in instructions("server.Dockerfile"):
            if word == "CMD":
                command = json.loads(rest)
                self.assertEqual(command[0], "server")
                self.assertEqual(unknown_flags("server", command[1:]), [])
            if word == "ENTRYPOINT":
                self.assertEqual(json.loads(rest), ["yard"])
        entrypoint = read("deploy", "docker", "worker-entrypoint.sh")
        for line in re.findall(r"exec yard (worker .*)", entrypoint):
            arguments = shlex.split(line)
            self.assertEqual(unknown_flags("worker", arguments[1:]), [], line)


def fake_tools(folder, gpus):
    """nvidia-smi listing GPU indexes, and a `yard` that records its arguments and sleeps."""
    bin_dir = os.path.join(folder, "bin")
    os.makedirs(bin_dir)
    scripts = {
        "nvidia-smi": "#!/bin/sh\n" + ("exit 9\n" if gpus is None else "".join(f"echo '{g}'\n" for g in gpus)),
        "yard": '#!/bin/sh\nprintf "%s\\n" "$*" > "$RECORD.$$"\nexec sleep 300\n',
    }
    for name, text in scripts.items():
        target = os.path.join(bin_dir, name)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(target, stat.S_IRWXU)
    return bin_dir


class WorkerEntrypointTests(unittest.TestCase):
    ENTRYPOINT = path("deploy", "docker", "worker-entrypoint.sh")

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="entrypoint-")
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
            process.stderr.close()
        subprocess.run(["rm", "-rf", self.folder], check=False)

    def start(self, bin_dir, *arguments, **env):
        environment = dict(os.environ, PATH=bin_dir + ":/usr/bin:/bin", GPU_LOCKS=os.path.join(self.folder, "locks"),
                           YARD_WORKER_DATA=os.path.join(self.folder, "data"), RECORD=os.path.join(self.folder, "args"), **env)
        if "YARD_GPU" not in env:
            environment.pop("YARD_GPU", None)
        process = subprocess.Popen(["sh", self.ENTRYPOINT, *arguments], env=environment,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    def arguments_of(self, process):
        """The arguments `yard` was started with by this entrypoint (it execs: same pid)."""
        record = os.path.join(self.folder, f"args.{process.pid}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(record):
                with open(record, encoding="utf-8") as handle:
                    text = handle.read()
                if text.endswith("\n"):
                    return text.split()
            if process.poll() is not None:
                raise AssertionError(f"the entrypoint exited {process.returncode}: {process.stderr.read()}")
            time.sleep(0.02)
        raise AssertionError("yard was not started")

    def test_replicas_take_different_gpus_and_one_too_many_is_refused(self):
        bin_dir = fake_tools(self.folder, ["0", "1", "2"])
        workers = [self.start(bin_dir, "--lease", "60") for _ in range(3)]
        taken = []
        for worker in workers:
            arguments = self.arguments_of(worker)
            self.assertEqual(arguments[0], "worker")
            gpu = arguments[arguments.index("--gpu") + 1]
            self.assertEqual(arguments[arguments.index("--data-dir") + 1], os.path.join(self.folder, "data", "gpu-" + gpu))
            self.assertEqual(arguments[-2:], ["--lease", "60"])
            taken.append(gpu)
        self.assertEqual(sorted(taken), ["0", "1", "2"])

        extra = self.start(bin_dir)
        self.assertEqual(extra.wait(timeout=10), 1)
        self.assertIn("every GPU here (0 1 2) has a worker already", extra.stderr.read())

        # A worker killed (its container restarted) frees its GPU for the next.
        dead = workers[taken.index("1")]
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        again = self.start(bin_dir)
        arguments = self.arguments_of(again)
        self.assertEqual(arguments[arguments.index("--gpu") + 1], "1")

    def test_yard_gpu_skips_the_search(self):
        bin_dir = fake_tools(self.folder, None)  # nvidia-smi would fail
        arguments = self.arguments_of(self.start(bin_dir, "--log-format", "json", YARD_GPU="0"))
        self.assertEqual(arguments[:5], ["worker", "--gpu", "0", "--data-dir", os.path.join(self.folder, "data", "gpu-0")])

    def test_no_gpu_is_one_line(self):
        bin_dir = fake_tools(self.folder, None)
        process = self.start(bin_dir)
        self.assertEqual(process.wait(timeout=10), 1)
        message = process.stderr.read().strip()
        self.assertEqual(len(message.splitlines()), 1, message)
        self.assertIn("nvidia-smi lists no GPU", message)


if __name__ == "__main__":
    unittest.main()
