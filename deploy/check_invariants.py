"""What ties the deployment files to the worker, beyond their schemas.

Checked: the Dockerfile's runtime stage (slim Debian, non-root, the worker as
entrypoint, `run` as command); the compose stack (Redis and PostgreSQL with
health checks, a migration step the workers wait for, two workers or more,
stop grace longer than the drain deadline); the Kubernetes manifests (probes on
/healthz and /readyz, a termination grace period longer than the drain
deadline, a migration Job, the Secret that both read, non-root pods, a
kustomization listing every manifest but the Secret example).

Run by deploy/check; exits non-zero listing every problem found.
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"

# The worker's default AREA_DRAIN_TIMEOUT_MS, and how much longer than the
# drain a stop must be allowed to take: the API and the last acks need time too.
DEFAULT_DRAIN_MS = 20_000
SHUTDOWN_MARGIN_MS = 5_000

problems = []


def check(condition, problem):
    if not condition:
        problems.append(problem)


def duration_ms(text):
    """Milliseconds of a compose duration such as `30s` or `1m30s`."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
    parts = re.findall(r"(\d+)(ms|s|m|h)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(number) * units[unit] for number, unit in parts)


def check_dockerfile():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    check(len(stages) >= 2, "Dockerfile: expected a build stage and a runtime stage")
    runtime = lines[stages[-1]:]
    check(
        runtime[0].split()[1] == "debian:bookworm-slim",
        "Dockerfile: the runtime stage must be debian:bookworm-slim",
    )
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    check(
        bool(users) and users[-1].split(":")[0] not in ("0", "root"),
        "Dockerfile: the runtime stage must switch to a non-root USER",
    )

    def instruction(name):
        found = [line[len(name):].strip() for line in runtime if line.startswith(name + " ")]
        return json.loads(found[-1]) if found else None

    check(instruction("ENTRYPOINT") == ["area-worker"], 'Dockerfile: ENTRYPOINT ["area-worker"]')
    check(instruction("CMD") == ["run"], 'Dockerfile: CMD ["run"]')


def check_compose():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("redis", "postgres", "migrate"):
        check(name in services, f"compose: no `{name}` service")
    for name in ("redis", "postgres"):
        check("healthcheck" in services.get(name, {}), f"compose: `{name}` has no healthcheck")

    migrate = services.get("migrate", {})
    check(migrate.get("command") == ["migrate"], "compose: `migrate` must run `migrate`")
    check(
        migrate.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
        "compose: `migrate` must wait for a healthy postgres",
    )

    workers = {
        name: service
        for name, service in services.items()
        if service.get("image") == migrate.get("image") and name != "migrate"
    }
    check(len(workers) >= 2, f"compose: expected two workers or more, found {sorted(workers)}")
    for name, worker in workers.items():
        depends = worker.get("depends_on", {})
        check(
            depends.get("migrate", {}).get("condition") == "service_completed_successfully",
            f"compose: `{name}` must wait for `migrate` to complete successfully",
        )
        check("healthcheck" in worker, f"compose: `{name}` has no healthcheck")
        drain_ms = int(worker.get("environment", {}).get("AREA_DRAIN_TIMEOUT_MS") or DEFAULT_DRAIN_MS)
        grace_ms = duration_ms(worker.get("stop_grace_period", "10s"))
        check(
            grace_ms >= drain_ms + SHUTDOWN_MARGIN_MS,
            f"compose: `{name}` stop_grace_period ({grace_ms} ms) must exceed the drain "
            f"deadline ({drain_ms} ms) by {SHUTDOWN_MARGIN_MS} ms",
        )


def load_manifests():
    manifests = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                name = document.get("metadata", {}).get("name", "")
                manifests[(document["kind"], name)] = (path.name, document)
    return manifests


def check_kubernetes():
    manifests = load_manifests()
    by_kind = {}
    for (kind, _), (_, document) in manifests.items():
        by_kind.setdefault(kind, []).append(document)

    kustomization = by_kind.get("Kustomization", [{}])[0]
    listed = set(kustomization.get("resources", []))
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    check(
        listed == files - {"secret.example.yaml"},
        f"k8s: kustomization must list every manifest but the Secret example; lists {sorted(listed)}",
    )

    config = by_kind.get("ConfigMap", [{}])[0].get("data", {})
    drain_ms = int(config.get("AREA_DRAIN_TIMEOUT_MS") or DEFAULT_DRAIN_MS)
    secrets = by_kind.get("Secret", [])
    check(len(secrets) == 1, "k8s: expected one Secret example")
    secret = secrets[0] if secrets else {"metadata": {}, "stringData": {}}
    secret_name = secret["metadata"].get("name")
    check("DATABASE_URL" in secret.get("stringData", {}), "k8s: the Secret example has no DATABASE_URL")
    check(
        all("CHANGE-ME" in str(value) or "example" in str(value) for value in secret.get("stringData", {}).values()),
        "k8s: the Secret example must hold placeholders only",
    )

    deployments = by_kind.get("Deployment", [])
    check(len(deployments) == 1, "k8s: expected one Deployment")
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        grace_ms = 1000 * pod.get("terminationGracePeriodSeconds", 30)
        check(
            grace_ms >= drain_ms + SHUTDOWN_MARGIN_MS,
            f"k8s: terminationGracePeriodSeconds ({grace_ms} ms) must exceed AREA_DRAIN_TIMEOUT_MS "
            f"({drain_ms} ms) by {SHUTDOWN_MARGIN_MS} ms",
        )
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "k8s: the worker pod must run as non-root")
        container = pod["containers"][0]
        check(container.get("args") == ["run"], "k8s: the worker container must run `run`")
        check(
            container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
            "k8s: the liveness probe must ask /healthz",
        )
        check(
            container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
            "k8s: the readiness probe must ask /readyz",
        )
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
        api_port = int(config.get("AREA_API_ADDR", "127.0.0.1:8080").rsplit(":", 1)[1])
        for probe in ("livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            check(
                ports.get(port, port) == api_port,
                f"k8s: the {probe} must reach the API port {api_port}",
            )
        check(
            not config.get("AREA_API_ADDR", "").startswith("127."),
            "k8s: AREA_API_ADDR must listen beyond loopback for the probes",
        )
        references = [source.get("secretRef", {}).get("name") for source in container.get("envFrom", [])]
        check(secret_name in references, "k8s: the worker must read the Secret")

    jobs = by_kind.get("Job", [])
    check(len(jobs) == 1, "k8s: expected one migration Job")
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        check(container.get("args") == ["migrate"], "k8s: the Job must run `migrate`")
        check(pod.get("restartPolicy") in ("OnFailure", "Never"), "k8s: the Job must not restart Always")
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "k8s: the Job pod must run as non-root")
        sources = [
            env.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
            for env in container.get("env", [])
            if env["name"] == "DATABASE_URL"
        ]
        check(sources == [secret_name], "k8s: the Job must read DATABASE_URL from the Secret")


def main():
    check_dockerfile()
    check_compose()
    check_kubernetes()
    for problem in problems:
        print(f"deploy: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("deploy: Dockerfile, compose stack and Kubernetes manifests agree with the worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
