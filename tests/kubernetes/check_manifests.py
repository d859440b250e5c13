"""Checks deploy/kubernetes/ for what the Kubernetes schemas cannot see: the resources
the schemas do not cover (cert-manager's Certificate, the Prometheus Operator's
ServiceMonitor, the Kustomization) field by field, and the facts that tie the files to
each other and to gatehouse.toml. Prints one line per problem and exits 1 if any; with
--extract-config DIR, writes the ConfigMap's gatehouse.toml there for `gatehouse check`.

Run by tests/scale_out.rs; needs PyYAML (a dependency of kubernetes-validate)."""

import pathlib
import sys
import tomllib

import yaml


def load(directory):
    """Every document of every YAML file, by kind (and the Kustomization)."""
    docs = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.setdefault(doc["kind"], []).append(doc)
    return docs


def one(docs, kind):
    found = docs.get(kind, [])
    if len(found) != 1:
        raise SystemExit(f"expected one {kind}, found {len(found)}")
    return found[0]


def check(directory):
    problems = []
    docs = load(directory)
    kustomization = one(docs, "Kustomization")
    listed = set(kustomization["resources"])
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        problems.append(f"kustomization resources {sorted(listed)} != files {sorted(present)}")

    config_map = one(docs, "ConfigMap")
    config = tomllib.loads(config_map["data"]["gatehouse.toml"])
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    if config.get("watch") is not True:
        problems.append("gatehouse.toml: watch = true, so Secret updates are reloaded")
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    drain = config["shutdown_timeout"]
    if not pre_stop + drain < grace <= pre_stop + drain + 10:
        problems.append(
            f"terminationGracePeriodSeconds {grace}: preStop {pre_stop} + shutdown_timeout {drain} and a few seconds"
        )
    security = container["securityContext"]
    if security.get("readOnlyRootFilesystem") is not True or security["capabilities"]["drop"] != ["ALL"]:
        problems.append("container: read-only root file system, all capabilities dropped")
    if set(security["capabilities"].get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append("container: no capability but NET_BIND_SERVICE")
    if pod["securityContext"].get("runAsNonRoot") is not True:
        problems.append("pod: runAsNonRoot")
    probe = container["readinessProbe"]["httpGet"]
    if probe["path"] != "/healthz":
        problems.append("readiness on /healthz")

    # Every path the config reads is on a mounted volume; the config itself too.
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    config_arg = container["args"][container["args"].index("--config") + 1]
    paths = [config_arg, config["state_dir"], config["admin"]["token_file"]]
    for cert in config["certificate"]:
        paths += [cert["cert"], cert["key"]]
    for listener in config["listener"]:
        paths += [listener.get("session_ticket_key_file")] if listener.get("session_ticket_key_file") else []
    for path in paths:
        if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{path} is on no volume mount of the container")
    if any("subPath" in m for m in container["volumeMounts"]):
        problems.append("a subPath mount is never updated by kubelet: mount whole volumes")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    binds = {int(l["bind"].rsplit(":", 1)[1]) for l in config["listener"]}
    admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
    if ports.get("https") not in binds or ports.get("admin") != admin_port:
        problems.append(f"container ports {ports} must match the listeners {binds} and admin {admin_port}")

    services = docs.get("Service", [])
    for service in services:
        if not set(service["spec"]["selector"].items()) <= set(labels.items()):
            problems.append(f"Service {service['metadata']['name']} selects no Gatehouse pod")
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in ports:
                problems.append(f"Service {service['metadata']['name']}: targetPort {port['targetPort']} is not a container port")
    pdb = one(docs, "PodDisruptionBudget")
    if pdb["spec"]["selector"]["matchLabels"] != deployment["spec"]["selector"]["matchLabels"]:
        problems.append("PodDisruptionBudget selects other pods than the Deployment")

    monitor = one(docs, "ServiceMonitor")
    if monitor["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append("ServiceMonitor: apiVersion monitoring.coreos.com/v1")
    scraped = [s for s in services if set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(s["metadata"]["labels"].items())]
    endpoint = monitor["spec"]["endpoints"][0]
    if len(scraped) != 1 or endpoint["port"] not in [p["name"] for p in scraped[0]["spec"]["ports"]]:
        problems.append("ServiceMonitor: selects the admin Service and names its port")
    if endpoint.get("path") != "/metrics":
        problems.append("ServiceMonitor: path /metrics")

    certificate = one(docs, "Certificate")
    spec = certificate["spec"]
    if certificate["apiVersion"] != "cert-manager.io/v1":
        problems.append("Certificate: apiVersion cert-manager.io/v1")
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    if spec["secretName"] not in secrets.values():
        problems.append(f"Certificate writes {spec['secretName']}, which no volume mounts")
    if not spec.get("dnsNames") or not spec.get("issuerRef", {}).get("name"):
        problems.append("Certificate: dnsNames and issuerRef.name")
    if spec["issuerRef"].get("kind") not in ("Issuer", "ClusterIssuer"):
        problems.append("Certificate: issuerRef.kind is Issuer or ClusterIssuer")
    if spec.get("privateKey", {}).get("rotationPolicy") != "Always":
        problems.append("Certificate: privateKey.rotationPolicy Always (a new key at each renewal)")
    return problems, config_map


def main():
    directory = pathlib.Path(sys.argv[1])
    problems, config_map = check(directory)
    for p in problems:
        print(p)
    if len(sys.argv) == 4 and sys.argv[2] == "--extract-config":
        pathlib.Path(sys.argv[3]).write_text(config_map["data"]["gatehouse.toml"])
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
