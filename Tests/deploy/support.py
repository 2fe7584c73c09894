"""What the deploy/ tests share: the repository's paths, YAML loading, the
version, and `yard SUB --help` of the built binary ($YARD_BIN)."""
import functools
import os
import re
import subprocess

import yaml  # PyYAML: in the services venv with mlflow (Tests/services/requirements.txt)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as handle:
        return handle.read()


def load_yaml(*parts):
    return yaml.safe_load(read(*parts))


def load_all_yaml(*parts):
    return [doc for doc in yaml.safe_load_all(read(*parts)) if doc is not None]


def version():
    match = re.search(r'static let version = "([^"]+)"', read("Sources", "YardDomain", "Trainyard.swift"))
    assert match, "no version in Sources/YardDomain/Trainyard.swift"
    return match.group(1)


def archive_name():
    """The archive's folder name as scripts/package.sh spells it, for this version."""
    match = re.search(r"^NAME=(\S+)$", read("scripts", "package.sh"), re.M)
    assert match, "scripts/package.sh sets no NAME="
    return match.group(1).replace("$VERSION", version())


def yard_bin():
    binary = os.environ.get("YARD_BIN")
    if not binary or not os.access(binary, os.X_OK):
        raise AssertionError("YARD_BIN must name a built yard (scripts/test.sh sets it): the deploy files' flags are checked against its --help")
    return binary


@functools.lru_cache(maxsize=None)
def help_text(subcommand):
    """`yard SUBCOMMAND --help`; the flags the deploy files use must be in it."""
    result = subprocess.run([yard_bin(), subcommand, "--help"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"yard {subcommand} --help failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    return result.stdout


def flags(arguments):
    """The long options in an argument list (`--name` or `--name=value`)."""
    return [arg.split("=", 1)[0] for arg in arguments if arg.startswith("--")]


def unknown_flags(subcommand, arguments):
    text = help_text(subcommand)
    return [flag for flag in flags(arguments) if not re.search(re.escape(flag) + r"(?![\w-])", text)]


# Names of settings whose values are secrets: they must come from the
# environment, a secret store or a file, never be written in a deploy file.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|REDIS_URL|_KEY$|^MINIO_ID$|ACCESS_KEY", re.I)
