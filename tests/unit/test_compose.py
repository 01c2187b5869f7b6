"""docker-compose.yml and the Dockerfile against the official Compose schema and the code.

Every check lives in a function that returns a list of problems, so the negative tests can
feed it a mutated file and see the problem named: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tradebus_common.auth.generate import init_auth
from tradebus_common.auth.identities import all_identities
from tradebus_common.cli.main import build_parser
from tradebus_common.cli.services import RUNNABLE, SERVICE_NAMES
from tradebus_common.config import Config, config_paths, env_name, load_config
from tradebus_common.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "services" / "Dockerfile"  # the top level holds only the fixed layout
APP_IMAGE = "tradebus:latest"
ENTRYPOINT = ["tradebus"]
ENV_PREFIX = "TRADEBUS__"
DB_SERVICES = {"position-ledger", "reconciler"}
CLUSTER_PORT = 6222
# Containers of the app image that are not services: what they run, as whom.
HELPERS = {"bus-init": "admin", "auth-monitor": "auth-monitor"}
REQUIRED = (*SERVICE_NAMES, "demo-feed")
GENERATED = "./.tradebus"  # `tradebus auth init --out .tradebus`: not in the repo
CREDS_TARGET = "/run/secrets/nats.creds"
STACK = ROOT / "libs" / "common" / "tradebus_common" / "stack"


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a second `signal:` would hide the first."""

    def construct_mapping(self, node, deep=False):
        own = [k.value for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
        dupes = sorted({k for k in own if own.count(k) > 1})
        if dupes:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {dupes}", node.start_mark
            )
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE.read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `tradebus auth init --out .tradebus` writes, as the compose file expects it."""
    root = tmp_path_factory.mktemp("generated")
    init_auth(root / ".tradebus", [])
    return root


@functools.cache
def compose_validator() -> jsonschema.protocols.Validator:
    # check-jsonschema vendors the compose-spec project's own schema: offline, pip-installed.
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def schema_problems(doc: dict[str, Any]) -> list[str]:
    errors = compose_validator().iter_errors(doc)
    return [f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# --- the checks ---------------------------------------------------------------------------


def app_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["services"].items() if v.get("image") == APP_IMAGE}


def argv(service: dict[str, Any]) -> list[str]:
    """What the container runs: the entrypoint (the image's unless overridden) + command."""
    entrypoint = service.get("entrypoint", ENTRYPOINT)
    command = service.get("command", [])
    if isinstance(entrypoint, str) or isinstance(command, str):
        return ["<shell form>"]  # split by a shell at run time: not what we ship
    return [*entrypoint, *command]


def command_problems(doc: dict[str, Any]) -> list[str]:
    problems, runs = [], []
    for key, svc in app_services(doc).items():
        args = argv(svc)
        if svc.get("build") != {"context": ".", "dockerfile": "services/Dockerfile"}:
            problems.append(f"{key}: not built from the repo's one Dockerfile")
        if key in HELPERS:
            problems += cli_problems(key, args)
            continue
        if len(args) != 3 or args[:2] != ["tradebus", "run"] or args[2] not in RUNNABLE:
            problems.append(f"{key}: runs {args}, not `tradebus run <service>`")
            continue
        runs.append(args[2])
        if key != args[2]:
            problems.append(f"{key}: runs {args[2]!r} under another name")
    for name in REQUIRED:  # the six services and the demo feed, once each
        if runs.count(name) != 1:
            problems.append(f"{name}: run by {runs.count(name)} services, want exactly 1")
    for name in set(runs) - set(REQUIRED):  # examples are optional, but never doubled
        if runs.count(name) > 1:
            problems.append(f"{name}: run by {runs.count(name)} services, want at most 1")
    return problems


def cli_problems(key: str, args: list[str]) -> list[str]:
    """A command line the real `tradebus` parser accepts (argparse exits on anything else)."""
    if args[:1] != ENTRYPOINT:
        return [f"{key}: runs {args}, not a tradebus command"]
    try:
        build_parser().parse_args(args[1:])
    except SystemExit:
        return [f"{key}: `{' '.join(args)}` is not a valid tradebus command"]
    return []


@functools.cache
def _dict_sections() -> tuple[str, ...]:
    """Config keys holding a dict (venues, strategies, ...): any deeper key may follow."""
    defaults = Config()
    paths = sorted(config_paths())
    dicts = [
        p for p in paths if isinstance(functools.reduce(getattr, p.split("."), defaults), dict)
    ]
    return tuple(env_name(p) + "__" for p in dicts)


def env_name_ok(name: str) -> bool:
    if name in {env_name(p) for p in config_paths()}:
        return True
    return any(name.startswith(s) and len(name) > len(s) for s in _dict_sections())


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The container's environment, `${VAR:-default}` as compose resolves it with VAR unset."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _defaults("" if v is None else str(v)) for k, v in env.items()}


def _defaults(value: str) -> str:
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def env_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    for key, svc in app_services(doc).items():
        env = environment(svc)
        for name in sorted(n for n in env if n.startswith(ENV_PREFIX)):
            if not env_name_ok(name):
                problems.append(f"{key}: {name} is no config key")
        try:  # names can be right and values still wrong (a port that is not a number)
            load_config(None, environ=env)
        except ConfigError as e:
            problems.append(f"{key}: its environment does not load: {e}")
        if env.get(env_name("bus.url")) != "nats://nats:4222":
            problems.append(f"{key}: bus url is not the nats service")
        if key in HELPERS:
            continue
        if (env_name("database.dsn") in env) != (key in DB_SERVICES):
            problems.append(f"{key}: a database DSN only and always for {sorted(DB_SERVICES)}")
    return problems


def _healthy_deps(svc: dict[str, Any]) -> set[str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return set()  # the short form waits for "started", not "healthy"
    return {d for d, spec in deps.items() if spec.get("condition") == "service_healthy"}


def depends_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    for key, svc in app_services(doc).items():
        need = {"nats"} | ({"postgres"} if key in DB_SERVICES else set())
        for dep in sorted(need - _healthy_deps(svc)):
            problems.append(f"{key}: does not wait for {dep} to be healthy")
        if key == "bus-init":
            continue  # runs once and exits
        if svc.get("restart") != "unless-stopped":
            problems.append(f"{key}: restart policy is not unless-stopped")
        if key not in HELPERS and "bus-init" not in _completed_deps(svc):
            problems.append(f"{key}: starts before bus-init created the streams")
    for key, svc in doc["services"].items():
        for dep in sorted(_healthy_deps(svc)):
            if "healthcheck" not in doc["services"].get(dep, {}):
                problems.append(f"{key}: waits on {dep}, which has no healthcheck")
    return problems


def _completed_deps(svc: dict[str, Any]) -> set[str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return set()
    return {
        d for d, spec in deps.items() if spec.get("condition") == "service_completed_successfully"
    }


def identity_of(key: str) -> str:
    return HELPERS.get(key, key)


def auth_problems(doc: dict[str, Any]) -> list[str]:
    """Each container connects as its own identity, from a generated .creds file."""
    problems = []
    identities = {i.name for i in all_identities([])}
    top = doc.get("secrets", {})
    for key, svc in app_services(doc).items():
        env, want = environment(svc), identity_of(key)
        if env.get(env_name("bus.creds_file")) != CREDS_TARGET:
            problems.append(f"{key}: does not read its credentials from {CREDS_TARGET}")
        if key not in HELPERS and env.get(env_name("bus.manage_topology")) != "false":
            problems.append(f"{key}: may try to administer streams (manage_topology)")
        mounted = [s for s in svc.get("secrets", []) if isinstance(s, dict)]
        sources = [s["source"] for s in mounted if CREDS_TARGET.endswith(s.get("target", "-"))]
        files = [top.get(src, {}).get("file") for src in sources]
        if want not in identities or files != [f"{GENERATED}/creds/{want}.creds"]:
            problems.append(f"{key}: credentials {files} are not {want}'s own")
    return problems


def _config_arg(command: list[str]) -> str | None:
    for flag, value in zip(command, command[1:], strict=False):
        if flag in ("-c", "--config"):
            return value
    return None


def _bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in svc.get("volumes", []):
        source, _, rest = volume.partition(":")
        if source.startswith("."):
            out.append((source, rest.split(":")[0]))
    return out


def host_path(source: str, root: Path, generated: Path | None) -> Path:
    if source.startswith(GENERATED) and generated is not None:
        return generated / source
    return root / source


def _mounted_file(
    svc: dict[str, Any], target: str, root: Path, generated: Path | None = None
) -> Path | None:
    """The host file behind a container path, through a file or a directory mount."""
    for source, mount in _bind_mounts(svc):
        if target == mount:
            return host_path(source, root, generated)
        if target.startswith(mount.rstrip("/") + "/"):
            return host_path(source, root, generated) / target[len(mount.rstrip("/")) + 1 :]
    return None


def mount_problems(doc: dict[str, Any], root: Path = ROOT, generated: Path | None = None):
    """Every bind-mounted file or directory exists (in the repo, or as auth init makes it)."""
    problems = []
    for key, svc in doc["services"].items():
        for source, _ in _bind_mounts(svc):
            if not host_path(source, root, generated).exists():
                problems.append(f"{key}: mounts {source}, which does not exist")
    for name, secret in doc.get("secrets", {}).items():
        if "file" in secret and not host_path(secret["file"], root, generated).exists():
            problems.append(f"secret {name}: {secret['file']} does not exist")
    return problems


def nats_problems(
    doc: dict[str, Any], root: Path = ROOT, generated: Path | None = None
) -> list[str]:
    problems = []
    nats_services = {k: v for k, v in doc["services"].items() if v["image"].startswith("nats:")}
    if "nats" not in nats_services:
        problems.append("no `nats` service")
    for key, svc in nats_services.items():
        target = _config_arg(svc.get("command", []))
        host = _mounted_file(svc, target, root, generated) if target else None
        if host is None or not host.is_file():
            problems.append(f"{key}: its config file is not mounted (repo or auth init)")
            continue
        text = host.read_text()
        if not re.search(r"^\s*jetstream\s*[:{]", text, re.MULTILINE):
            problems.append(f"{key}: {host.name} does not enable jetstream")
        if generated is not None and "include auth.conf" not in text:
            problems.append(f"{key}: {host.name} runs without auth")
        if _flags(svc["command"]).get("-sd") != "/data/jetstream" or not any(
            m == "/data" for _, m in [v.split(":")[:2] for v in svc.get("volumes", [])]
        ):
            problems.append(f"{key}: the JetStream store is not on a volume")
        if "healthcheck" not in svc:
            problems.append(f"{key}: no healthcheck")
    return problems


def _flags(command: list[str]) -> dict[str, str]:
    return dict(zip(command[::2], command[1::2], strict=False))


def cluster_problems(doc: dict[str, Any]) -> list[str]:
    """The `cluster` profile: unique names, one cluster name, every node routes to all."""
    nodes = {k: v for k, v in doc["services"].items() if "cluster" in v.get("profiles", [])}
    flags = {k: _flags(v["command"]) for k, v in nodes.items()}
    routes = {f"nats://{k}:{CLUSTER_PORT}" for k in nodes}
    problems = [] if len(nodes) >= 3 else [f"cluster has {len(nodes)} nodes, want >= 3"]
    if sorted(f.get("--name") for f in flags.values()) != sorted(nodes):
        problems.append("cluster: each node's --name must be its service name")
    if len({f.get("--cluster_name") for f in flags.values()}) != 1:
        problems.append("cluster: nodes disagree on --cluster_name")
    for key, f in flags.items():
        if set(f.get("--routes", "").split(",")) != routes:
            problems.append(f"{key}: routes {f.get('--routes')} are not {sorted(routes)}")
        if not f.get("--cluster", "").endswith(f":{CLUSTER_PORT}"):
            problems.append(f"{key}: cluster listener is not on {CLUSTER_PORT}")
    return problems


def compose_problems(
    doc: dict[str, Any], root: Path = ROOT, generated: Path | None = None
) -> list[str]:
    checks = (
        command_problems,
        env_problems,
        depends_problems,
        cluster_problems,
        auth_problems,
        observability_problems,
    )
    return [
        *schema_problems(doc),
        *(p for check in checks for p in check(doc)),
        *nats_problems(doc, root, generated),
        *mount_problems(doc, root, generated),
    ]


def observability_problems(doc: dict[str, Any]) -> list[str]:
    """Prometheus scrapes every service on the port compose gives it; traces reach the
    collector's OTLP/HTTP receiver."""
    problems = []
    services = doc["services"]
    profile = {k for k, v in services.items() if "observability" in v.get("profiles", [])}
    if profile != {"otel-collector", "prometheus", "grafana"}:
        problems.append(f"observability profile is {sorted(profile)}")
        return problems
    prom = load_yaml((STACK / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "tradebus")
    [sd] = job["dns_sd_configs"]
    for key, svc in app_services(doc).items():
        if key in HELPERS:
            continue
        env = environment(svc)
        if env.get(env_name("telemetry.prometheus_port")) != str(sd["port"]):
            problems.append(f"{key}: /metrics port is not the one Prometheus scrapes")
        if key not in sd["names"]:
            problems.append(f"{key}: Prometheus does not scrape it")
        endpoint = env.get(env_name("telemetry.otlp_endpoint"), "")
        collector = load_yaml((STACK / "otel-collector.yaml").read_text())
        http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        if not endpoint.startswith(f"http://otel-collector:{http.rsplit(':', 1)[1]}/"):
            problems.append(f"{key}: OTLP endpoint {endpoint!r} is not the collector")
    return problems


def _instruction(text: str, name: str) -> list[str] | str | None:
    found = re.findall(rf"^{name}\s+(.+)$", text, re.MULTILINE)
    if not found:
        return None
    try:  # the last one wins, as in docker; shell form stays a plain string
        return json.loads(found[-1])
    except ValueError:
        return found[-1]


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    if _instruction(text, "ENTRYPOINT") != ENTRYPOINT:
        problems.append(f"ENTRYPOINT is not exec-form {ENTRYPOINT}: compose commands need it")
    cmd = _instruction(text, "CMD")
    if isinstance(cmd, list) and cmd[:1] == ["run"]:
        problems.append("CMD starts a service: the image must not pick one by default")
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    if not user or user[-1] in ("root", "0"):
        problems.append("the image runs as root")
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    if len(stages) < 2 or not all(s.endswith("-slim") for s in stages):
        problems.append("not a multi-stage build on slim bases")
    final = text[text.rfind("\nFROM ") :]
    if not re.search(r"^RUN pip wheel .* \.$", text, re.MULTILINE) or not re.search(
        r"^RUN pip install --no-index --find-links /wheels tradebus", final, re.MULTILINE
    ):
        problems.append("the image does not install the repo's distribution")
    health = re.search(r"^HEALTHCHECK(?:.|\\\n)*?CMD\s+(\[.*\])$", text, re.MULTILINE)
    if health is None:
        problems.append("no HEALTHCHECK")
    else:
        problems += cli_problems("HEALTHCHECK", json.loads(health.group(1)))
    return problems


# --- the real files -----------------------------------------------------------------------


def test_compose_matches_the_official_schema(compose):
    assert schema_problems(compose) == []


def test_compose_agrees_with_the_code(compose, generated):
    assert compose_problems(compose, ROOT, generated) == []


def test_without_auth_init_the_missing_files_are_named(compose):
    problems = mount_problems(compose, ROOT, Path("/nonexistent"))
    assert any("creds/signal.creds does not exist" in p for p in problems)


def test_dockerfile_agrees_with_compose_commands():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_every_service_and_the_demo_feed_run_in_compose(compose):
    runs = sorted(argv(s)[2] for k, s in app_services(compose).items() if k not in HELPERS)
    assert runs == sorted(REQUIRED)
    assert set(SERVICE_NAMES) < set(runs)


# --- each check can fail --------------------------------------------------------------------


def _mutated(compose: dict[str, Any], edit) -> dict[str, Any]:
    doc = copy.deepcopy(compose)
    edit(doc)
    return doc


MUTATIONS = {
    "bad env name": (
        lambda d: d["services"]["signal"]["environment"].update(TRADEBUS__BUS__URLL="x"),
        "TRADEBUS__BUS__URLL is no config key",
    ),
    "bad env value": (
        lambda d: d["services"]["alerting"]["environment"].update(
            TRADEBUS__BUS__MAX_DELIVER="many"
        ),
        "alerting: its environment does not load",
    ),
    "bad command": (
        lambda d: d["services"]["signal"].update(command=["run", "sginal"]),
        "signal: runs ['tradebus', 'run', 'sginal']",
    ),
    "shell command": (
        lambda d: d["services"]["signal"].update(command="run signal"),
        "signal: runs ['<shell form>']",
    ),
    "service missing": (
        lambda d: d["services"].pop("reconciler"),
        "reconciler: run by 0 services",
    ),
    "service twice": (
        lambda d: d["services"].update(signal2=copy.deepcopy(d["services"]["signal"])),
        "signal: run by 2 services",
    ),
    "no healthy nats": (
        lambda d: d["services"]["risk-gate"].update(depends_on=["nats"]),
        "risk-gate: does not wait for nats to be healthy",
    ),
    "ledger without postgres": (
        lambda d: d["services"]["position-ledger"]["depends_on"].pop("postgres"),
        "position-ledger: does not wait for postgres",
    ),
    "nats config not mounted": (
        lambda d: d["services"]["nats"].update(volumes=["nats-data:/data"]),
        "nats: its config file is not mounted",
    ),
    "cluster route missing": (
        lambda d: d["services"]["nats-2"]["command"].__setitem__(
            -3, "nats://nats-1:6222,nats://nats-2:6222"
        ),
        "nats-2: routes",
    ),
    "bad helper command": (
        lambda d: d["services"]["bus-init"].update(command=["auth", "bootstrapp"]),
        "bus-init: `tradebus auth bootstrapp` is not a valid tradebus command",
    ),
    "another service's creds": (
        lambda d: d["services"]["signal"].update(
            secrets=[{"source": "risk-gate-creds", "target": "nats.creds"}]
        ),
        "signal: credentials ['./.tradebus/creds/risk-gate.creds'] are not signal's own",
    ),
    "service administers topology": (
        lambda d: d["services"]["risk-gate"]["environment"].pop("TRADEBUS__BUS__MANAGE_TOPOLOGY"),
        "risk-gate: may try to administer streams",
    ),
    "no bus-init wait": (
        lambda d: d["services"]["alerting"]["depends_on"].pop("bus-init"),
        "alerting: starts before bus-init",
    ),
    "store not on a volume": (
        lambda d: d["services"]["nats"]["volumes"].remove("nats-data:/data"),
        "nats: the JetStream store is not on a volume",
    ),
    "missing mount": (
        lambda d: d["services"]["prometheus"]["volumes"].__setitem__(
            0, "./nope/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        ),
        "prometheus: mounts ./nope/prometheus.yml, which does not exist",
    ),
    "metrics port mismatch": (
        lambda d: d["services"]["signal"].update(
            environment={
                **d["services"]["signal"]["environment"],
                "TRADEBUS__TELEMETRY__PROMETHEUS_PORT": "9100",
            }
        ),
        "signal: /metrics port is not the one Prometheus scrapes",
    ),
    "schema violation": (
        lambda d: d["services"]["postgres"].update(restart=["always"]),
        "schema: services/postgres/restart",
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_compose_is_reported(compose, generated, name):
    edit, expected = MUTATIONS[name]
    problems = compose_problems(_mutated(compose, edit), ROOT, generated)
    assert any(expected in p for p in problems), problems


def test_nats_config_without_jetstream_or_auth_is_reported(compose, tmp_path):
    init_auth(tmp_path / ".tradebus", [])
    conf = tmp_path / ".tradebus/nats/nats-server.conf"
    conf.write_text("port: 4222\n# jetstream is off here, and auth\n")
    problems = nats_problems(compose, ROOT, tmp_path)
    assert "nats: nats-server.conf does not enable jetstream" in problems
    assert "nats: nats-server.conf runs without auth" in problems


def test_duplicate_service_keys_are_refused():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        load_yaml("services:\n  signal: {image: a}\n  signal: {image: b}\n")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('ENTRYPOINT ["tradebus"]', 'ENTRYPOINT ["python"]'), "ENTRYPOINT"),
        (lambda t: t.replace('ENTRYPOINT ["tradebus"]', "ENTRYPOINT tradebus"), "ENTRYPOINT"),
        (lambda t: t.replace('CMD ["--help"]', 'CMD ["run", "signal"]'), "CMD"),
        (lambda t: re.sub(r"^USER .*$", "USER root", t, flags=re.MULTILINE), "root"),
        (
            lambda t: t.replace('CMD ["tradebus", "healthcheck"]', 'CMD ["tradebus", "helth"]'),
            "HEALTHCHECK",
        ),
        (
            lambda t: t.replace("FROM python:3.11-slim AS build", "FROM python:3.11 AS build"),
            "multi-stage",
        ),
    ],
    ids=[
        "other-entrypoint",
        "shell-form",
        "cmd-picks-service",
        "root-user",
        "bad-healthcheck",
        "fat-base",
    ],
)
def test_a_broken_dockerfile_is_reported(edit, expected):
    text = DOCKERFILE.read_text()
    assert edit(text) != text, "the mutation did not apply"
    assert any(expected in p for p in dockerfile_problems(edit(text)))


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("TRADEBUS__BUS__URL", True),
        ("TRADEBUS__VENUES__BINANCE__KIND", True),  # a dict section takes deeper keys
        ("TRADEBUS__STRATEGIES__DEMO__QUANTITY", True),
        ("TRADEBUS__BUS__URL__HOST", False),  # a scalar does not
        ("TRADEBUS__VENUES__", False),
        ("TRADEBUS__NOPE", False),
    ],
)
def test_env_name_check(name, ok):
    assert env_name_ok(name) is ok


def test_the_dashboard_queries_metrics_the_services_export():
    """Grafana panels name metrics from tradebus_common.metrics (the exporter adds _total to
    counters and _bucket to histograms); a renamed metric shows up here, not as an empty panel."""
    source = (ROOT / "libs/common/tradebus_common/metrics.py").read_text()
    defined = set(re.findall(r'"(tradebus_\w+)"', source))
    dashboard = json.loads((STACK / "grafana/dashboards/tradebus.json").read_text())
    used = {
        re.sub(r"_(total|bucket|sum|count)$", "", m)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for m in re.findall(r"tradebus_\w+", target["expr"])
    }
    assert used and used <= defined, sorted(used - defined)
