"""The files that ship hrcore: Dockerfile, compose, Makefile, CloudFormation, CI workflow.

There is no Docker engine here, so the image is covered by performing the
Dockerfile's own install steps into a fresh folder and serving the API from it.
"""

from __future__ import annotations

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

import httpx
import yaml
from cfnlint.decode import cfn_yaml

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


def test_the_image_runs_as_non_root_with_a_health_check_and_the_api_entry_point() -> None:
    runtime = dockerfile_stages()["runtime"]
    assert any(line.startswith("USER ") and "root" not in line for line in runtime)
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
    assert set(services) == {"postgres", "s3", "s3-seed", "api"}
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


def makefile_targets() -> dict[str, tuple[str, list[str]]]:
    """Each target of the Makefile: its ``##`` help text and its recipe lines.

    Read as text, so that the tests need no ``make`` (a fresh machine may lack it).
    """
    targets: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-z0-9-]+):[^=]*?(?:## (.*))?$", line)
        if match:
            current = []
            targets[match.group(1)] = (match.group(2) or "", current)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
    return targets


def test_the_makefile_has_the_targets_users_know_each_with_help() -> None:
    wanted = {
        "help", "build", "run", "run-dev", "run-local", "stop", "logs", "test", "test-s3",
        "test-db", "test-batch", "test-dept", "test-emp", "test-jobs", "test-get", "bench",
        "clean", "deploy",
    }  # fmt: skip
    targets = makefile_targets()
    assert wanted <= set(targets)
    assert all(targets[name][0] for name in wanted), "every target says what it does"
    assert targets["run-local"][1] == ["uv run hrcore-api"]
    assert targets["test"][1] == ["uv run pytest"]
    assert any("docker compose" in line or "$(COMPOSE) up" in line for line in targets["run"][1])
    deploy = " ".join(targets["deploy"][1])
    assert "AWS_REGION" in deploy
    assert "aws cloudformation deploy" in deploy
    assert "deploy/cloudformation.yml" in deploy
    assert "docker push" in deploy


def test_the_cloudformation_template_passes_cfn_lint_without_warnings() -> None:
    linted = subprocess.run(
        [BIN / "cfn-lint", ROOT / "deploy" / "cloudformation.yml"], capture_output=True, text=True
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_the_template_has_the_production_shape() -> None:
    template = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yml"))
    resources = template["Resources"]
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
    assert len(read_secrets[0]["Resource"]) == 2
    ingress = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule["SourceSecurityGroupId"] for rule in ingress] == [{"Ref": "TaskSecurityGroup"}]
    secrets = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Secrets"]
    assert {s["Name"] for s in secrets} == {"DATABASE_URL", "HRCORE_API_TOKEN"}


def test_the_github_workflow_runs_the_same_checks_as_ci() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert "postgres" in job["services"]
    commands = " ".join(step.get("run", "") for step in job["steps"])
    for check in ("uv sync --locked", "ruff format --check", "ruff check", "mypy", "pytest"):
        assert check in commands
    ci = (ROOT / ".ci" / "run").read_text()
    for check in ("uv sync --locked", "ruff format --check", "ruff check", "mypy"):
        assert check in ci
