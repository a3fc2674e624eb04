"""The files that ship hrcore: Dockerfile, compose, Makefile, CloudFormation, CI workflow.

There is no Docker engine here, so the image is covered by performing the
Dockerfile's own install steps into a fresh folder and serving the API from it.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hrcore
import httpx
import yaml
from cfnlint.decode import cfn_yaml
from hrcore._db import CONNECT_TIMEOUT, DEFAULT_LOCK_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continuation lines joined) by stage name."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def instructions(stage: list[str], name: str) -> list[str]:
    """The arguments of each ``name`` instruction of a stage (instructions are case-blind)."""
    found = []
    for line in stage:
        parts = line.split(None, 1)
        if parts[0].upper() == name:
            found.append(parts[1].strip() if len(parts) > 1 else "")
    return found


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as lists of words: comments dropped,
    continuation lines joined, split at newlines, ``;``, ``&``, ``&&``, ``|``, ``||``,
    ``(`` and ``)``. Quoting is the shell's: a quoted ``#`` or newline stays in its word.
    """
    joined = re.sub(r"\\\n", " ", script)
    # shlex drops a comment together with the newline that ends it: double every
    # newline, so that one is left to end the command before the comment
    lexer = shlex.shlex(joined.replace("\n", "\n\n"), posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word and set(word) <= set(";&|()\n"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [words for words in commands if words]


def created_users(stage: list[str]) -> dict[str, str | None]:
    """The users a stage's ``useradd`` commands create, with the ``--uid`` given, if any."""
    users: dict[str, str | None] = {}
    for run in instructions(stage, "RUN"):
        for words in shell_commands(run):
            if words[0] != "useradd":
                continue
            uid = None
            for i, word in enumerate(words):
                if word in ("-u", "--uid"):
                    uid = words[i + 1]
                elif word.startswith("--uid="):
                    uid = word.split("=", 1)[1]
            users[words[-1]] = uid
    return users


def is_root(user: str) -> bool:
    return user == "root" or (user.isdigit() and int(user) == 0)


def test_the_image_runs_as_non_root_with_a_health_check_and_the_api_entry_point() -> None:
    runtime = dockerfile_stages()["runtime"]
    users = instructions(runtime, "USER")
    assert users, "the runtime stage must name its user (the default is root)"
    user = users[-1].split(":")[0]  # the last USER is the one the entry point runs as
    assert user, f"USER {users[-1]}: no user"
    assert "$" not in user, f"USER {users[-1]}: a literal user, not a variable"
    assert not is_root(user), f"USER {users[-1]} is root"
    if not user.isdigit():  # a name: made in this stage, not with uid 0 (useradd -o -u 0)
        created = created_users(runtime)
        assert user in created, f"USER {user} is not created by useradd in the runtime stage"
        uid = created[user]
        assert uid is None or not is_root(uid), f"{user} is created with uid {uid}"
    assert any(line.startswith("HEALTHCHECK") and "/health-db" in line for line in runtime)
    assert 'ENTRYPOINT ["hrcore-api"]' in runtime
    assert any("COPY --from=build" in line and ".venv" in line for line in runtime)
    assert "dev" in dockerfile_stages()


def test_the_dockerfile_install_steps_make_an_environment_that_serves_the_api(
    tmp_path: Path, refs: str
) -> None:
    build = dockerfile_stages()["build"]
    copies = [
        line.split()[1:] for line in build if line.startswith("COPY") and "--from" not in line
    ]
    syncs = [
        line[line.index("uv sync") :]
        for line in build
        if line.startswith("RUN") and "uv sync" in line
    ]
    assert syncs[0].split()[:4] == ["uv", "sync", "--locked", "--no-dev"]
    assert len(syncs) == 2
    # the dependency layer needs only the pyproject files and the lock
    for *sources, target in copies[:3]:
        for source in sources:
            destination = tmp_path / (
                target if not target.endswith("/") and target != "./" else source
            )
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, destination)
    uv = shutil.which("uv")
    assert uv is not None, "uv must be installed to run the Dockerfile's steps"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}
    env.pop("VIRTUAL_ENV")
    subprocess.run(shlex.split(syncs[0]), cwd=tmp_path, env=env, check=True, capture_output=True)
    for *sources, target in copies[3:]:
        for source in sources:
            shutil.copytree(
                ROOT / source,
                tmp_path / target,
                ignore=shutil.ignore_patterns("__pycache__"),
                dirs_exist_ok=True,
            )
    subprocess.run(shlex.split(syncs[1]), cwd=tmp_path, env=env, check=True, capture_output=True)

    venv = tmp_path / ".venv"
    dev_tool = subprocess.run([venv / "bin" / "python", "-c", "import pytest"], capture_output=True)
    assert dev_tool.returncode != 0, "--no-dev: the image must not carry the test tools"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shutil.rmtree(tmp_path / "packages")  # --no-editable: the environment stands alone
    server = subprocess.Popen(
        [venv / "bin" / "hrcore-api", "--port", str(port)],
        env={**env, "DATABASE_URL": refs},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health-db")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=10)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_wires_postgres_a_seeded_s3_emulator_and_the_api() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "s3", "s3-seed", "api", "worker"}
    api = services["api"]
    assert api["build"]["target"] in dockerfile_stages()
    assert api["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "s3-seed": {"condition": "service_completed_successfully"},
    }
    env = api["environment"]
    pg = services["postgres"]["environment"]
    assert env["DATABASE_URL"] == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert env["AWS_ENDPOINT_URL"].startswith("http://s3:")
    assert env["S3_BUCKET_NAME"] in " ".join(services["s3-seed"]["command"])
    seeded = services["s3-seed"]["volumes"][0].split(":")[0]
    assert {p.name for p in (ROOT / seeded).glob("*.csv")} == {
        "departments.csv",
        "jobs.csv",
        "hired_employees.csv",
    }
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["s3"]
    dev = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())["services"]["api"]
    assert dev["build"]["target"] == "dev"


def test_compose_runs_a_worker_with_the_api_image_and_environment() -> None:
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert worker["build"] == api["build"]
    assert worker["environment"] == api["environment"]
    assert worker["depends_on"] == api["depends_on"]
    # the image's ENTRYPOINT is hrcore-api: a command alone would be its arguments
    argv = [*worker.get("entrypoint", image_entrypoint()), *worker.get("command", [])]
    assert argv[:2] == ["hrcore", "worker"]
    assert "ports" not in worker
    # the image's HEALTHCHECK asks the API's port, which the worker does not serve
    assert worker["healthcheck"] == {"disable": True}
    dev = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())["services"]
    assert dev["worker"]["build"] == dev["api"]["build"]
    assert dev["worker"]["volumes"] == dev["api"]["volumes"]


# settings the deploy target reads from the environment, and make's own
UNSET = {"AWS_REGION", "VPC_ID", "PUBLIC_SUBNETS", "PRIVATE_SUBNETS", "DATA_BUCKET"}
UNSET |= {"HRCORE_API_TOKEN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES"}


def make(*arguments: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """GNU make (here and on CI's runners) on the Makefile, in a cleared environment,
    with ``path`` (stub commands) first on PATH."""
    program = shutil.which("make")
    assert program is not None, "GNU make is needed to see what the Makefile's targets run"
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [program, "--no-print-directory", "-C", str(ROOT), "TAG=test", *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def make_dry_run(target: str, *variables: str, path: Path | None = None) -> list[list[str]]:
    """The commands that ``make -n TARGET`` prints: what the target would run."""
    done = make("-n", target, *variables, path=path)
    assert done.returncode == 0, done.stderr
    assert "Nothing to be done" not in done.stdout + done.stderr, f"{target} has no recipe"
    return shell_commands(done.stdout)


def test_the_makefile_has_the_targets_users_know_each_with_help() -> None:
    wanted = {
        "help", "build", "run", "run-dev", "run-local", "stop", "logs", "test", "test-s3",
        "test-db", "test-batch", "test-dept", "test-emp", "test-jobs", "test-get", "bench",
        "clean", "deploy",
    }  # fmt: skip
    listed = make("-s", "help")
    assert listed.returncode == 0, listed.stderr
    helps = dict(line.strip().partition(" ")[::2] for line in listed.stdout.splitlines())
    assert wanted <= set(helps), "make help lists every target"
    assert all(helps[name].strip() for name in wanted), "every target says what it does"
    for name in wanted - {"deploy"}:  # deploy: in the test below, with stubs
        assert make_dry_run(name), f"make {name} runs nothing"
    assert make_dry_run("run-local") == [["uv", "run", "hrcore-api"]]
    assert make_dry_run("test") == [["uv", "run", "pytest"]]
    up = [words for words in make_dry_run("run") if words[:2] == ["docker", "compose"]]
    assert any("up" in words for words in up)


def stub(folder: Path, name: str, output: str = "") -> None:
    """A command that notes its arguments in folder/calls and prints output."""
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{folder}/calls"\necho "{output}"\n')
    script.chmod(0o755)


def test_make_deploy_needs_a_region_then_pushes_the_image_and_deploys_the_template(
    tmp_path: Path,
) -> None:
    # make expands the whole recipe first, $(shell aws sts ...) too: never the real aws
    stub(tmp_path, "aws", "123456789012")
    stub(tmp_path, "docker")
    refused = make("deploy", path=tmp_path)  # for real: the first step must stop it
    assert (refused.returncode, refused.stdout.strip()) == (2, "set AWS_REGION")
    called = (tmp_path / "calls").read_text().splitlines()
    assert all(call.startswith("aws sts ") for call in called), called

    commands = make_dry_run("deploy", "AWS_REGION=eu-west-3", path=tmp_path)
    image = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/hrcore-api:test"
    deploy = next((w for w in commands if w[:3] == ["aws", "cloudformation", "deploy"]), None)
    assert deploy is not None, "make deploy runs no aws cloudformation deploy"
    assert deploy[deploy.index("--template-file") + 1] == "deploy/cloudformation.yml"
    assert f"ImageUri={image}" in deploy
    assert ["docker", "push", image] in commands, "make deploy pushes the image to ECR"
    assert commands.index(["docker", "push", image]) < commands.index(deploy)


def test_the_cloudformation_template_passes_cfn_lint_without_warnings() -> None:
    linted = subprocess.run(
        [BIN / "cfn-lint", ROOT / "deploy" / "cloudformation.yml"], capture_output=True, text=True
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yml"))
    return loaded


def test_the_template_has_the_production_shape() -> None:
    resources = template()["Resources"]
    kinds = {r["Type"] for r in resources.values()}
    assert {
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ECS::Service",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::RDS::DBCluster",
        "AWS::Logs::LogGroup",
    } <= kinds
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/health-db"
    assert resources["Service"]["Properties"]["LaunchType"] == "FARGATE"
    assert resources["DatabaseCluster"]["Properties"]["Engine"] == "aurora-postgresql"
    assert "ServerlessV2ScalingConfiguration" in resources["DatabaseCluster"]["Properties"]
    policy = resources["CpuScaling"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    statements = resources["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert sorted(s["Action"] for s in statements) == [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]
    put = next(s for s in statements if s["Action"] == "s3:PutObject")
    assert put["Resource"]["Fn::Sub"].endswith("/backups/*")
    read_secrets = resources["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    assert [s["Action"] for s in read_secrets] == ["secretsmanager:GetSecretValue"]
    assert read_secrets[0]["Resource"] == [
        {"Ref": "DatabaseUrlSecret"},
        {"Ref": "DatabaseReadUrlSecret"},
        {"Ref": "ApiTokenSecret"},
    ]
    ingress = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule["SourceSecurityGroupId"] for rule in ingress] == [
        {"Ref": "TaskSecurityGroup"},
        {"Ref": "WorkerSecurityGroup"},
    ]
    assert "SecurityGroupIngress" not in resources["WorkerSecurityGroup"]["Properties"]
    secrets = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Secrets"]
    assert {s["Name"] for s in secrets} == {
        "DATABASE_URL",
        "HRCORE_READ_DATABASE_URL",
        "HRCORE_API_TOKEN",
    }


def image_entrypoint() -> list[str]:
    """The runtime image's ENTRYPOINT (exec form): what runs when nothing overrides it."""
    entrypoint: list[str] = json.loads(
        instructions(dockerfile_stages()["runtime"], "ENTRYPOINT")[-1]
    )
    return entrypoint


def ecs_container(resources: dict[str, Any], service: str) -> dict[str, Any]:
    """The one container of an ECS service's task definition."""
    assert resources[service]["Type"] == "AWS::ECS::Service", f"no ECS service {service}"
    task = resources[service]["Properties"]["TaskDefinition"]["Ref"]
    containers: list[dict[str, Any]] = resources[task]["Properties"]["ContainerDefinitions"]
    assert len(containers) == 1
    return containers[0]


def ecs_argv(container: dict[str, Any]) -> list[Any]:
    """What the container runs: its EntryPoint (else the image's) and Command."""
    return [*container.get("EntryPoint", image_entrypoint()), *container.get("Command", [])]


def env_names(container: dict[str, Any]) -> set[str]:
    return {e["Name"] for e in container.get("Environment", []) + container.get("Secrets", [])}


def test_the_worker_service_runs_hrcore_worker_from_the_api_image_with_the_api_env() -> None:
    resources = template()["Resources"]
    api, worker = ecs_container(resources, "Service"), ecs_container(resources, "WorkerService")
    assert ecs_argv(api)[0] == "hrcore-api"
    assert worker["Image"] == api["Image"] == {"Ref": "ImageUri"}
    assert ecs_argv(worker)[:2] == ["hrcore", "worker"]
    assert env_names(worker) == env_names(api)
    assert worker["Environment"] == api["Environment"]
    assert worker["Secrets"] == api["Secrets"]
    assert "PortMappings" not in worker
    # SIGTERM: its jobs stop at the next batch boundary; 120 s is Fargate's maximum
    assert 30 < worker["StopTimeout"] <= 120
    service = resources["WorkerService"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert "LoadBalancers" not in service
    groups = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    ingress = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert all(
        any(rule["SourceSecurityGroupId"] == group and rule["FromPort"] == 5432 for rule in ingress)
        for group in groups
    ), "the worker's tasks reach the database"
    tasks = {
        resources[name]["Properties"]["TaskDefinition"]["Ref"]
        for name in ("Service", "WorkerService")
    }
    for task in tasks:
        properties = resources[task]["Properties"]
        assert properties["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}
        assert properties["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}


def scaling_policies(resources: dict[str, Any], target: str) -> list[dict[str, Any]]:
    """The target tracking configurations of a scalable target's policies."""
    return [
        r["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for r in resources.values()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
        and r["Properties"]["ScalingTargetId"] == {"Ref": target}
        and r["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]


def test_the_worker_service_is_autoscaled_on_cpu() -> None:
    loaded = template()
    resources, parameters = loaded["Resources"], loaded["Parameters"]
    targets = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
        and r["Properties"]["ResourceId"] == {"Fn::Sub": "service/${Cluster}/${WorkerService.Name}"}
    ]
    assert len(targets) == 1, "one scalable target for the worker service"
    target = resources[targets[0]]["Properties"]
    assert target["ServiceNamespace"] == "ecs"
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    for bound in ("MinCapacity", "MaxCapacity"):
        assert target[bound]["Ref"] in parameters, f"{bound}: a parameter"
    assert resources["WorkerService"]["Properties"]["DesiredCount"] == target["MinCapacity"]
    metrics = [
        policy["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for policy in scaling_policies(resources, targets[0])
    ]
    assert metrics == ["ECSServiceAverageCPUUtilization"]


def test_aurora_has_a_reader_and_autoscales_its_replicas_on_reader_cpu() -> None:
    loaded = template()
    resources, parameters = loaded["Resources"], loaded["Parameters"]
    instances = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::RDS::DBInstance"
        and r["Properties"]["DBClusterIdentifier"] == {"Ref": "DatabaseCluster"}
    ]
    assert len(instances) >= 2, "a writer and at least one reader"
    targets = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
        and r["Properties"]["ServiceNamespace"] == "rds"
    ]
    assert len(targets) == 1, "one scalable target for the cluster's replicas"
    target = resources[targets[0]]["Properties"]
    assert target["ScalableDimension"] == "rds:cluster:ReadReplicaCount"
    assert target["ResourceId"] == {"Fn::Sub": "cluster:${DatabaseCluster}"}
    for bound in ("MinCapacity", "MaxCapacity"):
        assert target[bound]["Ref"] in parameters, f"{bound}: a parameter"
    assert int(parameters[target["MinCapacity"]["Ref"]]["Default"]) >= 1
    # registered once the first reader exists, so it never races the stack's instances
    depends = resources[targets[0]].get("DependsOn", [])
    assert set(instances) & set([depends] if isinstance(depends, str) else depends)
    metrics = [
        policy["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for policy in scaling_policies(resources, targets[0])
    ]
    assert metrics == ["RDSReaderAverageCPUUtilization"]


def test_the_api_and_the_worker_get_the_read_url_from_the_cluster_reader_endpoint() -> None:
    resources = template()["Resources"]
    for service in ("Service", "WorkerService"):
        secrets = {s["Name"]: s["ValueFrom"] for s in ecs_container(resources, service)["Secrets"]}
        writer = resources[secrets["DATABASE_URL"]["Ref"]]["Properties"]["SecretString"]
        reader = resources[secrets["HRCORE_READ_DATABASE_URL"]["Ref"]]["Properties"]["SecretString"]
        url, variables = reader["Fn::Sub"]
        assert variables["Host"] == {"Fn::GetAtt": ["DatabaseCluster", "ReadEndpoint.Address"]}
        assert writer["Fn::Sub"][1]["Host"] == {
            "Fn::GetAtt": ["DatabaseCluster", "Endpoint.Address"]
        }
        # built as DATABASE_URL is: same user, password, port and database, the reader host
        assert url == writer["Fn::Sub"][0]
        assert {k: v for k, v in variables.items() if k != "Host"} == {
            k: v for k, v in writer["Fn::Sub"][1].items() if k != "Host"
        }


# the longest a rows POST or a restore may take inside the request, from the
# library's own bounds: a pooled connection (the pool's wait), a new connection,
# the lock wait, then the work (restoring 1M employees: about 10 s, the README's
# backup benchmark; 1000 rows: well under a second)
POOL_WAIT = inspect.signature(hrcore.ConnectionPool).parameters["timeout"].default
LONGEST_REQUEST = POOL_WAIT + CONNECT_TIMEOUT + DEFAULT_LOCK_TIMEOUT + 10


def test_the_load_balancer_idle_timeout_outlasts_the_longest_request() -> None:
    resources = template()["Resources"]
    attributes = {
        a["Key"]: a["Value"]
        for a in resources["LoadBalancer"]["Properties"].get("LoadBalancerAttributes", [])
    }
    assert "idle_timeout.timeout_seconds" in attributes, "the default, 60 s, is too short"
    idle = int(attributes["idle_timeout.timeout_seconds"])
    assert LONGEST_REQUEST <= idle <= 4000, (idle, LONGEST_REQUEST)  # 4000: the ALB's maximum
    for service in ("Service", "WorkerService"):  # no task waits longer for a lock
        assert "HRCORE_LOCK_TIMEOUT" not in env_names(ecs_container(resources, service))


CHECKS = [
    ["uv", "sync", "--locked"],
    ["uv", "run", "ruff", "format", "--check"],
    ["uv", "run", "ruff", "check"],
    ["uv", "run", "mypy"],
]


def runs(commands: list[list[str]], check: list[str]) -> bool:
    return any(words[: len(check)] == check for words in commands)


def test_the_github_workflow_runs_the_same_checks_as_ci() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert "postgres" in job["services"]
    # only the commands of run: steps that always run and whose failure fails the job
    assert "if" not in job
    assert not job.get("continue-on-error")
    commands = [
        words
        for step in job["steps"]
        if "run" in step and "if" not in step and not step.get("continue-on-error")
        for words in shell_commands(step["run"])
    ]
    for check in [*CHECKS, ["uv", "run", "pytest"]]:
        assert runs(commands, check), " ".join(check)
    ci = shell_commands((ROOT / ".ci" / "run").read_text())
    for check in CHECKS:
        assert runs(ci, check), " ".join(check)
