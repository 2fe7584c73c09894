"""deploy/k8s: every manifest parses (several documents a file), the kinds
and fields the deployment rests on (the server's volume, the workers' GPU,
Redis' password and AOF, probes), selectors that select, and secrets only by
reference to the Secret the README makes. Linted, not applied: there is no
cluster here."""
import os
import re
import shutil
import subprocess
import unittest

from support import SECRET_NAME, load_all_yaml, load_yaml, path, read, unknown_flags, version

K8S = path("deploy", "k8s")


def manifests():
    kustomization = load_yaml("deploy", "k8s", "kustomization.yaml")
    return {name: load_all_yaml("deploy", "k8s", name) for name in kustomization["resources"]}


def workloads(docs):
    return [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet")]


def containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def one(docs, kind, name):
    found = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} {kind} named {name}")
    return found[0]


class KubernetesTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = manifests()
        cls.docs = [doc for docs in cls.files.values() for doc in docs]

    def test_kustomization_lists_every_manifest(self):
        on_disk = sorted(name for name in os.listdir(K8S) if name.endswith(".yaml") and name != "kustomization.yaml")
        self.assertEqual(sorted(self.files), on_disk)
        for doc in self.docs:
            self.assertIn("apiVersion", doc)
            self.assertTrue(doc["metadata"]["name"])

    def test_the_images_are_this_version(self):
        kustomization = load_yaml("deploy", "k8s", "kustomization.yaml")
        tags = {image["name"]: image["newTag"] for image in kustomization["images"]}
        self.assertEqual(tags, {"trainyard-server": version(), "trainyard-worker": version()})

    def test_the_server_is_one_stateful_replica_with_its_volume_and_probes(self):
        server = one(self.docs, "StatefulSet", "yard-server")
        self.assertEqual(server["spec"]["replicas"], 1)  # one server per data dir (yard.lock)
        claims = {claim["metadata"]["name"] for claim in server["spec"]["volumeClaimTemplates"]}
        container = containers(server)[0]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        args = container["args"]
        data_dir = args[args.index("--data-dir") + 1]
        self.assertIn(mounts.get(data_dir), claims, "the data dir is not on the claim")
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/health")
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/ready")
        ports = {port["name"] for port in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.assertIn(container[probe]["httpGet"]["port"], ports)
        service = one(self.docs, "Service", "yard-server")
        self.assertIn(service["spec"]["ports"][0]["targetPort"], ports)
        self.assertEqual(server["spec"]["serviceName"], "yard-server")

    def test_each_worker_requests_one_gpu(self):
        worker = one(self.docs, "Deployment", "yard-worker")
        container = containers(worker)[0]
        resources = container["resources"]
        self.assertEqual(resources["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(resources["requests"]["nvidia.com/gpu"], 1)
        env = {item["name"]: item for item in container["env"]}
        self.assertEqual(env["YARD_GPU"]["value"], "0")  # the pod's only GPU
        self.assertEqual(worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0)

    def test_redis_has_a_password_from_the_secret_and_an_append_only_file(self):
        redis = one(self.docs, "StatefulSet", "yard-redis")
        container = containers(redis)[0]
        command = " ".join(container["command"])
        self.assertIn("--appendonly yes", command)
        self.assertIn('requirepass "%s"', command)
        env = {item["name"]: item for item in container["env"]}
        self.assertEqual(env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"], "redis-password")
        self.assertTrue(redis["spec"]["volumeClaimTemplates"])
        self.assertIn("REDISCLI_AUTH", " ".join(container["readinessProbe"]["exec"]["command"]))
        policy = one(self.docs, "NetworkPolicy", "yard-redis")
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"], redis["spec"]["template"]["metadata"]["labels"])

    def test_selectors_select_their_pods(self):
        labels = []
        for workload in workloads(self.docs):
            template = workload["spec"]["template"]["metadata"]["labels"]
            selector = workload["spec"]["selector"]["matchLabels"]
            self.assertLessEqual(selector.items(), template.items(), workload["metadata"]["name"])
            labels.append(template)
        for service in (doc for doc in self.docs if doc["kind"] == "Service"):
            selector = service["spec"]["selector"]
            self.assertEqual(sum(selector.items() <= template.items() for template in labels), 1,
                             f"Service {service['metadata']['name']} selects no workload or several")

    def test_secrets_only_by_reference(self):
        self.assertFalse([doc for doc in self.docs if doc["kind"] == "Secret"], "a Secret with values is in the repository")
        keys = set(re.findall(r"--from-(?:literal|file)=([a-z-]+)=", read("README.md")))
        self.assertTrue(keys, "README has no `kubectl create secret generic trainyard` command")
        configmaps = {doc["metadata"]["name"] for doc in self.docs if doc["kind"] == "ConfigMap"}
        for workload in workloads(self.docs):
            for container in containers(workload):
                from_secret = set()
                for item in container.get("env", []):
                    reference = item.get("valueFrom", {}).get("secretKeyRef")
                    if reference:
                        self.assertEqual(reference["name"], "trainyard")
                        self.assertIn(reference["key"], keys, "a key the README's secret command does not make")
                        from_secret.add(item["name"])
                    elif SECRET_NAME.search(item["name"]):
                        value = item.get("value", "")
                        # Only $(VAR) of variables that come from the Secret.
                        used = set(re.findall(r"\$\(([A-Z0-9_]+)\)", value))
                        self.assertTrue(used and used <= from_secret, f"{item['name']} is written in the manifest")
                        self.assertNotRegex(re.sub(r"\$\([A-Z0-9_]+\)", "", value), r"://[^/@]*:[^/@$]+@")
                for source in container.get("envFrom", []):
                    self.assertIn(source["configMapRef"]["name"], configmaps)
        for configmap in (doc for doc in self.docs if doc["kind"] == "ConfigMap"):
            for key in configmap["data"]:
                self.assertNotRegex(key, SECRET_NAME, f"ConfigMap holds {key}, a secret")

    def test_the_yard_flags_it_uses_exist(self):
        server = containers(one(self.docs, "StatefulSet", "yard-server"))[0]["args"]
        self.assertEqual(server[0], "server")
        self.assertEqual(unknown_flags("server", server[1:]), [])
        worker = containers(one(self.docs, "Deployment", "yard-worker"))[0]["args"]
        self.assertEqual(unknown_flags("worker", worker), [])

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not installed (optional: kustomize's own build)")
    def test_kustomize_builds_it(self):
        result = subprocess.run(["kubectl", "kustomize", K8S], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        kinds = sorted(doc["kind"] for doc in load_all_from_text(result.stdout))
        self.assertEqual(kinds, sorted(doc["kind"] for doc in self.docs))


def load_all_from_text(text):
    import yaml
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


if __name__ == "__main__":
    unittest.main()
