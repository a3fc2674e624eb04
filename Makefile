# hrcore: the commands users of the old service know, on this stack.
# Account and region come from the environment (AWS_REGION, the AWS CLI's profile).

API ?= http://localhost:8000
IMAGE ?= hrcore-api
TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo latest)
STACK ?= hrcore
AUTH = $(if $(HRCORE_API_TOKEN),-H "Authorization: Bearer $(HRCORE_API_TOKEN)")
CURL = curl -fsS $(AUTH)
COMPOSE = docker compose

.PHONY: help build run run-dev run-local stop logs test test-s3 test-db test-batch \
	test-dept test-emp test-jobs test-get bench clean deploy

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

build: ## build the API image
	docker build --target runtime -t $(IMAGE):$(TAG) -t $(IMAGE):latest .

run: ## PostgreSQL + S3 emulator (seeded) + API in containers, on $(API)
	$(COMPOSE) up -d --build

run-dev: ## the same with the dev image: source mounted, reload on change
	$(COMPOSE) -f docker-compose.yml -f docker-compose.dev.yml up --build

run-local: ## the API without Docker, on the embedded PostgreSQL and the sample folder
	uv run hrcore-api

stop: ## stop the containers
	$(COMPOSE) down

logs: ## follow the API's logs
	$(COMPOSE) logs -f api

test: ## the test suite (real PostgreSQL, moto's S3 server)
	uv run pytest

test-s3: ## ask the running API whether the bucket is reachable
	$(CURL) $(API)/health-s3; echo

test-db: ## ask the running API whether the database answers
	$(CURL) $(API)/health-db; echo

test-batch: ## load the three files from the bucket through the running API
	$(CURL) -X POST $(API)/departments/batch; echo
	$(CURL) -X POST $(API)/jobs/batch; echo
	$(CURL) -X POST $(API)/employees/batch; echo

test-dept: ## post two departments (one invalid) to the running API
	$(CURL) -X POST $(API)/departments -H 'Content-Type: application/json' \
		-d '{"rows": [{"id": 100, "department": "Research"}, {"id": 101, "department": ""}]}'; echo

test-jobs: ## post two jobs (one invalid) to the running API
	$(CURL) -X POST $(API)/jobs -H 'Content-Type: application/json' \
		-d '{"rows": [{"id": 500, "job": "Data Engineer"}, {"id": "x", "job": "Pilot"}]}'; echo

test-emp: ## post employees as CSV (one invalid) to the running API
	printf '9001,Ada Lovelace,2021-07-27T16:02:08Z,1,1\n9002,Bad Date,2021-02-30T00:00:00Z,1,1\n' | \
		$(CURL) -X POST $(API)/employees -H 'Content-Type: text/csv' --data-binary @-; echo

test-get: ## read pages and the metrics from the running API
	$(CURL) "$(API)/employees?limit=3"; echo
	$(CURL) "$(API)/metrics/hires-by-quarter?year=2021" -H 'Accept: text/csv' | sed -n '1,5p'
	$(CURL) "$(API)/metrics/departments-above-mean?year=2021"; echo

bench: ## the load benchmark (minutes): hrcore against psql \copy
	uv run python benchmarks/load_speed.py --rows 1000000 --repeat 3

clean: ## remove the environment, caches, generated data and backups
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache bench-data backups
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

deploy: ## build, push to ECR and deploy the CloudFormation stack (see README)
	@test -n "$(AWS_REGION)" || (echo "set AWS_REGION" && exit 2)
	@test -n "$(VPC_ID)" -a -n "$(PUBLIC_SUBNETS)" -a -n "$(PRIVATE_SUBNETS)" -a -n "$(DATA_BUCKET)" || \
		(echo "set VPC_ID, PUBLIC_SUBNETS, PRIVATE_SUBNETS (comma-separated) and DATA_BUCKET" && exit 2)
	$(eval ACCOUNT := $(shell aws sts get-caller-identity --query Account --output text))
	$(eval REGISTRY := $(ACCOUNT).dkr.ecr.$(AWS_REGION).amazonaws.com)
	aws ecr describe-repositories --repository-names $(IMAGE) >/dev/null 2>&1 || \
		aws ecr create-repository --repository-name $(IMAGE) >/dev/null
	aws ecr get-login-password | docker login --username AWS --password-stdin $(REGISTRY)
	docker build --target runtime -t $(REGISTRY)/$(IMAGE):$(TAG) .
	docker push $(REGISTRY)/$(IMAGE):$(TAG)
	aws cloudformation deploy --stack-name $(STACK) --template-file deploy/cloudformation.yml \
		--capabilities CAPABILITY_IAM --parameter-overrides \
		ImageUri=$(REGISTRY)/$(IMAGE):$(TAG) VpcId=$(VPC_ID) DataBucketName=$(DATA_BUCKET) \
		PublicSubnetIds=$(PUBLIC_SUBNETS) PrivateSubnetIds=$(PRIVATE_SUBNETS)
	aws cloudformation describe-stacks --stack-name $(STACK) --query 'Stacks[0].Outputs' --output table
