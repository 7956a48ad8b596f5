"""Checks docker/compose.yaml and docker/kubernetes.yaml parse and say what they promise."""
import sys

try:
    import yaml
except ImportError:
    print("python3-yaml not installed: skipping")
    sys.exit(77)

root = sys.argv[1]

with open(f"{root}/docker/compose.yaml") as f:
    compose = yaml.safe_load(f)
service = compose["services"]["nibble"]
devices = service["deploy"]["resources"]["reservations"]["devices"]
assert devices[0]["driver"] == "nvidia" and devices[0]["count"] == 1 and "gpu" in devices[0]["capabilities"], \
    "compose reserves one GPU"
assert "8000:8000" in service["ports"]
assert any(v.endswith(":/models/model:ro") for v in service["volumes"]), "model mounted read-only"

with open(f"{root}/docker/kubernetes.yaml") as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
kinds = {d["kind"]: d for d in docs}
deployment, service = kinds["Deployment"], kinds["Service"]
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, "one GPU per replica"
for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
    assert container[probe]["httpGet"]["path"] == "/health", probe
drain = int(next(e["value"] for e in container["env"] if e["name"] == "NIBBLE_DRAIN_TIMEOUT"))
assert pod["terminationGracePeriodSeconds"] > drain, "grace period covers the drain timeout"
assert pod["securityContext"]["runAsNonRoot"] is True
labels = deployment["spec"]["template"]["metadata"]["labels"]
assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items()), "Service selects the pods"
assert service["spec"]["ports"][0]["port"] == 8000
print("compose.yaml and kubernetes.yaml: ok")
