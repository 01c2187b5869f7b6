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
        if len(args) != 3 or args[:2] != ["tradebus", "run"] or args[2] not in RUNNABLE:
            problems.append(f"{key}: runs {args}, not `tradebus run <service>`")
            continue
        runs.append(args[2])
        if key != args[2]:
            problems.append(f"{key}: runs {args[2]!r} under another name")
        if svc.get("build") != {"context": ".", "dockerfile": "services/Dockerfile"}:
            problems.append(f"{key}: not built from the repo's one Dockerfile")
    for name in RUNNABLE:  # the six services and the demo feed, once each
        if runs.count(name) != 1:
            problems.append(f"{name}: run by {runs.count(name)} services, want exactly 1")
    return problems


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
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


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
        if svc.get("restart") != "unless-stopped":
            problems.append(f"{key}: restart policy is not unless-stopped")
    for key, svc in doc["services"].items():
        for dep in sorted(_healthy_deps(svc)):
            if "healthcheck" not in doc["services"].get(dep, {}):
                problems.append(f"{key}: waits on {dep}, which has no healthcheck")
    return problems


def _config_arg(command: list[str]) -> str | None:
    for flag, value in zip(command, command[1:], strict=False):
        if flag in ("-c", "--config"):
            return value
    return None


def _mounted_file(svc: dict[str, Any], target: str, root: Path) -> Path | None:
    for volume in svc.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target and source.startswith("."):
            return root / source
    return None


def nats_problems(doc: dict[str, Any], root: Path = ROOT) -> list[str]:
    problems = []
    nats_services = {k: v for k, v in doc["services"].items() if v["image"].startswith("nats:")}
    if "nats" not in nats_services:
        problems.append("no `nats` service")
    for key, svc in nats_services.items():
        target = _config_arg(svc.get("command", []))
        host = _mounted_file(svc, target, root) if target else None
        if host is None or not host.is_file():
            problems.append(f"{key}: its config file is not mounted from the repo")
        elif not re.search(r"^\s*jetstream\s*[:{]", host.read_text(), re.MULTILINE):
            problems.append(f"{key}: {host.name} does not enable jetstream")
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


def compose_problems(doc: dict[str, Any], root: Path = ROOT) -> list[str]:
    checks = (command_problems, env_problems, depends_problems, cluster_problems)
    return [
        *schema_problems(doc),
        *(p for check in checks for p in check(doc)),
        *nats_problems(doc, root),
    ]


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
    if not re.search(r"^RUN pip install \.", text, re.MULTILINE):
        problems.append("the image does not install the repo's distribution")
    return problems


# --- the real files -----------------------------------------------------------------------


def test_compose_matches_the_official_schema(compose):
    assert schema_problems(compose) == []


def test_compose_agrees_with_the_code(compose):
    assert compose_problems(compose) == []


def test_dockerfile_agrees_with_compose_commands():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_every_service_and_the_demo_feed_run_in_compose(compose):
    runs = sorted(argv(s)[2] for s in app_services(compose).values())
    assert runs == sorted(RUNNABLE)
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
    "schema violation": (
        lambda d: d["services"]["postgres"].update(restart=["always"]),
        "schema: services/postgres/restart",
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_compose_is_reported(compose, name):
    edit, expected = MUTATIONS[name]
    problems = compose_problems(_mutated(compose, edit))
    assert any(expected in p for p in problems), problems


def test_nats_config_without_jetstream_is_reported(compose, tmp_path):
    conf = tmp_path / "libs/common/tradebus_common/stack/nats-server.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("port: 4222\n# jetstream is off here\n")
    assert "nats: nats-server.conf does not enable jetstream" in nats_problems(compose, tmp_path)


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
    ],
    ids=["other-entrypoint", "shell-form", "cmd-picks-service", "root-user"],
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
