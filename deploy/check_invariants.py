"""What ties the deployment files to the worker, beyond their schemas.

Checked: the Dockerfile's runtime stage (slim Debian, non-root, the worker as
entrypoint, `run` as command); the compose stack (Redis and PostgreSQL with
health checks, a migration step the workers wait for, two workers or more,
stop grace longer than the drain deadline); the Kubernetes manifests (probes on
/healthz and /readyz, a termination grace period longer than the drain
deadline, a migration Job, the Secret that both read, non-root pods, a
kustomization listing every manifest but the Secret example); and, against
the worker's sources, that every probe asks a GET route the API really serves,
that every environment variable the files set is one the worker reads, and that
the migrations are embedded in the binary rather than shipped beside it.

With `--binary PATH` (a built `area-worker`), also asks the binary itself: each
file's environment must pass `area-worker config` (which refuses unknown
`AREA_` variables and invalid values), and `area-worker migrate` must work from
a directory that holds no migrations, against a scratch database it drops
afterwards (`DATABASE_URL`'s server, default the local one).

Run by deploy/check; exits non-zero listing every problem found.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import uuid

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
WORKER = ROOT / "crates" / "area-worker" / "src"

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


def non_test_source(path):
    """A Rust file's text before its `#[cfg(test)]` module."""
    return path.read_text().split("#[cfg(test)]", 1)[0]


def worker_variables():
    """Every environment variable the worker reads, from its sources: the
    options of `Config` (crates/area-worker/src/config.rs), the variables of
    other subcommands, and those the reaction crates look up."""
    config = non_test_source(WORKER / "config.rs")
    block = config.split("options! {", 1)[1].split("\n}", 1)[0]
    keys = re.findall(r"^\s+(\w+): [^=;]+ = ", block, re.MULTILINE)
    keys += re.findall(r"pub (\w+): Option<", config)
    foreign = re.search(r"FOREIGN_VARIABLES: \[&str; \d+\] = \[([^\]]*)\]", config)
    keys += re.findall(r'"(\w+)"', foreign.group(1)) if foreign else []
    variables = {"AREA_" + key.upper() for key in keys}
    variables |= {"REDIS_URL", "DATABASE_URL"}
    variables |= set(re.findall(r'env = "(\w+)"', (WORKER / "main.rs").read_text()))
    for path in (ROOT / "crates").glob("reaction-*/src/**/*.rs"):
        variables |= set(re.findall(r'"(AREA_[A-Z0-9_]+)"', non_test_source(path)))
    check("AREA_CONCURRENCY" in variables, "worker: could not read the options of config.rs")
    check("AREA_SMTP_HOST" in variables, "worker: could not read the reaction crates' variables")
    return variables


def api_get_routes():
    """The paths the API serves with GET, from its router."""
    router = (WORKER / "api" / "mod.rs").read_text()
    return set(re.findall(r'\.route\(\s*"([^"]+)",\s*get\(', router))


def dockerfile_runtime_env():
    """The ENV of the Dockerfile's last stage, as a dict."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    env = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for name, value in re.findall(r"(\w+)=(\S+)", line):
                env[name] = value
    return env


def environments():
    """Each environment the files give a container of the worker image: a
    name, the variables and whether the container runs `run` (as opposed to
    `migrate`). A compose variable without a value is passed through from the
    shell only when set there: it is listed with the value None."""
    image_env = dockerfile_runtime_env()
    found = []

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        env = dict(image_env)
        env.update({key: value for key, value in (service.get("environment") or {}).items()})
        found.append((f"compose service `{name}`", env, service.get("command") != ["migrate"]))

    manifests = load_manifests()
    config = next((doc for (kind, _), (_, doc) in manifests.items() if kind == "ConfigMap"), {})
    secret = next((doc for (kind, _), (_, doc) in manifests.items() if kind == "Secret"), {})
    for (kind, name), (_, document) in manifests.items():
        if kind not in ("Deployment", "Job"):
            continue
        container = document["spec"]["template"]["spec"]["containers"][0]
        env = dict(image_env)
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(config.get("data", {}))
            if "secretRef" in source:
                env.update(secret.get("stringData", {}))
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            elif variable.get("valueFrom", {}).get("secretKeyRef"):
                key = variable["valueFrom"]["secretKeyRef"]["key"]
                env[variable["name"]] = secret.get("stringData", {}).get(key)
        found.append((f"k8s {kind} `{name}`", env, container.get("args") != ["migrate"]))
    return found


def check_against_sources():
    variables = worker_variables()
    for where, env, _ in environments():
        for name in sorted(env):
            check(name in variables, f"{where}: the worker reads no variable {name}")

    routes = api_get_routes()
    check("/readyz" in routes, "worker: could not read the API's routes")
    probed = {}
    for (kind, name), (_, document) in load_manifests().items():
        if kind != "Deployment":
            continue
        container = document["spec"]["template"]["spec"]["containers"][0]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            path = container.get(probe, {}).get("httpGet", {}).get("path")
            if path:
                probed[f"k8s Deployment `{name}` {probe}"] = path
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for path in re.findall(r"GET (\S+) HTTP", test):
            probed[f"compose service `{name}` healthcheck"] = path
    check(probed, "no probe found in the manifests")
    for where, path in sorted(probed.items()):
        check(path in routes, f"{where}: the API serves no GET {path}")

    migrate = non_test_source(ROOT / "crates" / "area-store" / "src" / "migrate.rs")
    check(
        'embed_migrations!("../../migrations")' in migrate,
        "area-store: the migrations must be embedded with embed_migrations!",
    )
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]
    copies = re.findall(r"^COPY .*$", runtime, re.MULTILINE)
    check(
        copies == ["COPY --from=builder /usr/local/bin/area-worker /usr/local/bin/area-worker"],
        f"Dockerfile: the runtime stage must copy the binary alone, found {copies}",
    )
    ignored = (ROOT / ".dockerignore").read_text().split()
    check(
        not any(pattern.strip("/").startswith("migrations") for pattern in ignored),
        ".dockerignore: the build needs migrations/ to embed them",
    )


def run_binary(binary, args, env, cwd):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [binary, *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# What the runtime image (debian:bookworm-slim) has to offer a dynamically
# linked binary: the C library and libgcc. No libssl, no libpq.
RUNTIME_LIBRARIES = ("linux-vdso", "libc.so", "libm.so", "libgcc_s.so", "ld-linux", "libdl.so",
                     "libpthread.so", "librt.so")


def check_with_binary(binary):
    """What only the worker itself can tell: whether it links anything the
    slim image lacks, whether it accepts each file's environment, and whether
    `migrate` needs files beside the binary."""
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    libraries = [line.split()[0] for line in linked.stdout.splitlines() if line.strip()]
    check(linked.returncode == 0 and libraries, f"ldd {binary} failed: {linked.stderr.strip()}")
    foreign = [name for name in libraries if not name.startswith(RUNTIME_LIBRARIES) and "/ld-linux" not in name]
    check(not foreign, f"area-worker links libraries the slim image lacks: {foreign}")

    with tempfile.TemporaryDirectory() as empty:
        for where, env, runs_worker in environments():
            if not runs_worker:
                continue
            given = {key: str(value) for key, value in env.items() if value is not None}
            done = run_binary(binary, ["config"], given, empty)
            check(
                done.returncode == 0,
                f"{where}: `area-worker config` refuses its environment: "
                f"{done.stderr.strip()[-400:]}",
            )

        server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/area")
        server = server.rsplit("/", 1)[0]
        database = f"area_deploy_check_{uuid.uuid4().hex[:12]}"
        try:
            done = run_binary(binary, ["migrate"], {"DATABASE_URL": f"{server}/{database}"}, empty)
            check(
                done.returncode == 0,
                f"`area-worker migrate` from a directory without migrations failed: "
                f"{done.stderr.strip()[-400:]}",
            )
        finally:
            subprocess.run(
                ["psql", f"{server}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{database}"'],
                capture_output=True,
                check=False,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--binary", help="a built area-worker to ask as well")
    args = parser.parse_args()

    check_dockerfile()
    check_compose()
    check_kubernetes()
    check_against_sources()
    if args.binary:
        check_with_binary(os.path.abspath(args.binary))  # it runs from an empty directory
    for problem in problems:
        print(f"deploy: {problem}", file=sys.stderr)
    if problems:
        return 1
    asked = " (and the binary agrees)" if args.binary else ""
    print(f"deploy: Dockerfile, compose stack and Kubernetes manifests agree with the worker{asked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
