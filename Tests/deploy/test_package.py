"""The release archive of scripts/package.sh: what is in it, a `bin/yard`
that links no Swift runtime, and that runs in a bare Debian root (chroot,
no Swift there) for --version, --help, `up --help` and a real `yard serve`
answering /health; install.sh run for real (an existing Python, as on a GPU
server) and its errors.

Building the archive takes ~10+ minutes on two cores, so these run only when
dist/ holds this version's archive (or YARD_PACKAGE_ARCHIVE names one), or
with YARD_TEST_PACKAGE=1, which builds it first."""
import glob
import json
import sys
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from support import archive_name, path, read, version

CACHE = os.environ.get("TRAINYARD_CACHE", os.path.expanduser("~/.cache/trainyard"))


def archive_path():
    given = os.environ.get("YARD_PACKAGE_ARCHIVE")
    if given:
        return given
    return path("dist", archive_name() + ".tar.gz")


def wanted():
    return os.path.exists(archive_path()) or os.environ.get("YARD_TEST_PACKAGE") == "1"


def debian_root():
    """A minimal Debian (debootstrap minbase + libsqlite3-0) with no Swift in it:
    $YARD_DEBIAN_ROOT, else one made earlier in the cache, else made now."""
    given = os.environ.get("YARD_DEBIAN_ROOT")
    if given:
        return given
    for found in sorted(glob.glob(os.path.join(CACHE, "debian-root-*", ".complete"))):
        return os.path.dirname(found)
    if not shutil.which("debootstrap"):
        raise AssertionError("no Debian root for the chroot test: apt-get install debootstrap, or set YARD_DEBIAN_ROOT")
    target = os.path.join(CACHE, "debian-root-bookworm-minbase")
    subprocess.run(["rm", "-rf", target], check=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=libsqlite3-0", "bookworm", target],
                   check=True, stdout=subprocess.DEVNULL, timeout=1800)
    open(os.path.join(target, ".complete"), "w").close()
    return target


def chroot_tool():
    found = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
    if not found:
        raise AssertionError("no chroot (coreutils) on this machine")
    return found


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@unittest.skipUnless(wanted(), "no release archive in dist/ (scripts/package.sh) and YARD_TEST_PACKAGE is not 1")
class PackageTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(archive_path()):
            started = time.monotonic()
            subprocess.run([path("scripts", "package.sh")], check=True, timeout=3600)
            print(f"\n[package] scripts/package.sh took {time.monotonic() - started:.0f} s", flush=True)
        cls.archive = archive_path()
        cls.name = archive_name()
        cls.unpacked = tempfile.mkdtemp(prefix="yard-package-")
        with tarfile.open(cls.archive) as tar:
            cls.members = tar.getmembers()
            tar.extractall(cls.unpacked, filter="tar")
        cls.top = os.path.join(cls.unpacked, cls.name)
        cls.yard = os.path.join(cls.top, "bin", "yard")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.unpacked, ignore_errors=True)

    def test_the_archive_holds_the_binary_the_engine_and_install_sh(self):
        names = {member.name for member in self.members}
        for member in self.members:
            self.assertTrue(member.name == self.name or member.name.startswith(self.name + "/"), member.name)
            self.assertNotIn("..", member.name.split("/"))
            self.assertFalse(member.issym() or member.islnk() or member.isdev(), member.name)
            self.assertEqual((member.uid, member.gid), (0, 0), member.name)
            self.assertNotIn("__pycache__", member.name)
        for required in ("bin/yard", "install.sh", "share/trainyard/engine/requirements.txt",
                         "share/trainyard/engine/trainyard_engine/__main__.py", "share/trainyard/engine/trainyard/client.py",
                         "share/trainyard/systemd/yard-server.service", "share/trainyard/systemd/yard-worker@.service"):
            self.assertIn(f"{self.name}/{required}", names)
        executable = {m.name: m.mode for m in self.members}
        self.assertEqual(executable[f"{self.name}/bin/yard"] & 0o111, 0o111)
        self.assertEqual(executable[f"{self.name}/install.sh"] & 0o111, 0o111)
        with open(os.path.join(self.top, "share/trainyard/engine/requirements.txt"), encoding="utf-8") as handle:
            self.assertEqual(handle.read(), read("engine", "requirements.txt"))
        # Every engine source of the repository is in it.
        for source in glob.glob(path("engine", "trainyard_engine", "*.py")):
            self.assertTrue(os.path.exists(os.path.join(self.top, "share/trainyard/engine/trainyard_engine", os.path.basename(source))), source)

    def test_yard_links_no_swift_runtime(self):
        linked = subprocess.run(["ldd", self.yard], capture_output=True, text=True, check=True).stdout
        print("\n[package] ldd bin/yard:\n" + linked, flush=True)
        self.assertNotRegex(linked, r"libswift|libFoundation|libdispatch|libBlocksRuntime|libicu")
        self.assertNotIn("not found", linked)
        self.assertEqual(subprocess.run([self.yard, "--version"], capture_output=True, text=True, check=True).stdout.strip(),
                         f"trainyard {version()}")

    def chroot(self, root, *arguments, timeout=60):
        return subprocess.run([chroot_tool(), root, *arguments], capture_output=True, text=True, timeout=timeout,
                              env={"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})

    def test_it_runs_in_a_bare_debian_root_without_swift(self):
        if os.geteuid() != 0:
            self.skipTest("chroot needs root")
        root = debian_root()
        swift = [p for p in glob.glob(os.path.join(root, "usr", "**", "libswift*"), recursive=True)]
        swift += [p for p in glob.glob(os.path.join(root, "usr", "**", "bin", "swift*"), recursive=True)]
        self.assertEqual(swift, [], "the Debian root has Swift in it")
        inside = tempfile.mkdtemp(prefix="yard-package-", dir=os.path.join(root, "tmp"))
        proc = os.path.join(root, "proc")
        try:
            shutil.copytree(self.top, os.path.join(inside, self.name))
            # As on any running system: Swift's runtime reads a program's
            # arguments from /proc/self/cmdline (without /proc, yard sees none).
            subprocess.run(["mount", "-t", "proc", "proc", proc], check=True)
            yard = "/tmp/" + os.path.basename(inside) + "/" + self.name + "/bin/yard"
            result = self.chroot(root, yard, "--version")
            self.assertEqual((result.returncode, result.stdout.strip()), (0, f"trainyard {version()}"), result.stderr)
            result = self.chroot(root, yard, "--help")
            self.assertEqual(result.returncode, 0, result.stderr)
            for subcommand in ("up", "server", "worker", "submit", "backup"):
                self.assertRegex(result.stdout, rf"\n\s+{subcommand}\s")
            result = self.chroot(root, yard, "up", "--help")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("--workers", result.stdout)
            print(f"\n[package] in the Debian root: {yard} --version, --help, up --help ran", flush=True)

            # install.sh there: no python3, so it says so in one line and installs nothing.
            install = "/tmp/" + os.path.basename(inside) + "/" + self.name + "/install.sh"
            result = self.chroot(root, install, "--prefix", "/tmp/" + os.path.basename(inside) + "/prefix")
            self.assertEqual(result.returncode, 1)
            self.assertEqual(result.stderr.strip().splitlines(), [result.stderr.strip()])
            self.assertIn("no python3 on PATH", result.stderr)

            # A real server: `yard serve` (no workers) answers /health from inside the root.
            port = free_port()
            server = subprocess.Popen([chroot_tool(), root, yard, "serve", "--port", str(port), "--data-dir",
                                       "/tmp/" + os.path.basename(inside) + "/data"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
            try:
                body = None
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and server.poll() is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                            body = response.read().decode()
                            break
                    except (urllib.error.URLError, ConnectionError):
                        time.sleep(0.2)
                self.assertIsNotNone(body, "yard serve in the Debian root never answered /health")
                # /ready says what is missing there: the engine's Python.
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5)
                    self.fail("/ready said ready without an engine")
                except urllib.error.HTTPError as error:
                    self.assertEqual(error.code, 503)
                    self.assertEqual(json.loads(error.read())["failing"], "engine")
                print(f"[package] yard serve in the Debian root: /health {body.strip()[:80]}; /ready 503 naming the engine", flush=True)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
                server.stdout.close()
        finally:
            subprocess.run(["umount", proc], check=False, stderr=subprocess.DEVNULL)
            shutil.rmtree(inside, ignore_errors=True)

    def install(self, *arguments):
        environment = {k: v for k, v in os.environ.items() if k not in ("YARD_PYTHON", "YARD_ENGINE_DIR")}
        return subprocess.run([os.path.join(self.top, "install.sh"), *arguments], capture_output=True, text=True,
                              timeout=600, env=environment)

    def test_install_sh_with_an_existing_python(self):
        python = os.environ.get("YARD_PYTHON")
        if not python:
            raise AssertionError("YARD_PYTHON must name the engine's venv Python (scripts/test.sh sets it)")
        # A prefix with a space in it, as anyone's folder may have.
        with tempfile.TemporaryDirectory(prefix="yard prefix-") as prefix:
            result = self.install("--prefix", prefix, "--python", python)
            self.assertEqual(result.returncode, 0, result.stderr)
            # Its own `yard doctor` (run with no YARD_* set, it imports torch: a minute here)
            # found the installed engine and the Python install.sh chose.
            output = result.stdout + result.stderr
            self.assertIn("ok: ready to train", output)
            self.assertRegex(output, r"\npython +" + re.escape(os.path.join(prefix, "share", "trainyard", "python")) + " ")
            self.assertRegex(output, r"\nengine +" + re.escape(os.path.join(prefix, "share", "trainyard", "engine")) + "\n")
            installed = os.path.join(prefix, "bin", "yard")
            self.assertEqual(subprocess.run([installed, "--version"], capture_output=True, text=True).stdout.strip(), f"trainyard {version()}")
            wrapper = subprocess.run([os.path.join(prefix, "share", "trainyard", "python"), "-c", "import ultralytics, sys; print(sys.prefix)"],
                                     capture_output=True, text=True, timeout=120)
            self.assertEqual(wrapper.returncode, 0, wrapper.stderr)
            # Installed again over itself: still one engine, one binary.
            again = self.install("--prefix", prefix, "--python", python, "--no-check")
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(sorted(os.listdir(os.path.join(prefix, "share", "trainyard"))), ["engine", "python"])

    def test_install_sh_errors_are_one_line_naming_the_option(self):
        with tempfile.TemporaryDirectory(prefix="yard-prefix-") as prefix:
            cases = [
                (["--prefix", prefix, "--python", "/nonexistent/python3"], "--python: /nonexistent/python3 is not an executable file"),
                (["--prefix", prefix, "--python", "/bin/true"], "--python: /bin/true is not a Python 3.11 or newer"),
                (["--prefix", prefix, "--python", sys.executable], f"--python: {sys.executable} cannot import ultralytics and torch"),
                (["--prefix", prefix, "--frobnicate"], "unknown option --frobnicate"),
                (["--prefix"], "--prefix needs a folder"),
                (["--prefix", prefix + "/it's", "--python", "/bin/true"], "--prefix: a folder without quotes"),
            ]
            for arguments, message in cases:
                result = self.install(*arguments)
                self.assertEqual(result.returncode, 1, arguments)
                lines = result.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, result.stderr)
                self.assertIn(message, lines[0])
            self.assertEqual(os.listdir(prefix), [], "a failed install wrote something")


if __name__ == "__main__":
    unittest.main()
