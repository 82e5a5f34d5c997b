# Every target is thin: it calls the package CLI or a tool. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# No telemetry, no update checks, no interpreter downloads: nothing leaves this machine
# beyond the package registries.
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := True
export ITERATIVE_DO_NOT_TRACK := 1
export UV_PYTHON_DOWNLOADS := never
export MPLBACKEND := Agg
# The project's own BentoML store (models and Bentos), beside .venv and ignored by git.
export BENTOML_HOME ?= $(abspath .bentoml)
# DVC stages run `python -m …`: make that the project's interpreter.
# BentoML builds with uv from PATH (else it pip-installs one): the bootstrapped one counts.
export PATH := $(abspath .venv)/bin:$(abspath .tools)/bin:$(PATH)

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
TF := $(BIN)/traffic-forecast
PYTEST_ARGS ?=
# Hydra overrides for any target that reads settings, e.g.
#   make deploy ARGS="deploy.router_port=9080"    make repro ARGS="model=theta"
ARGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Settings: ARGS=\"<Hydra overrides>\" on any target, e.g. make deploy ARGS=\"deploy.router_port=9080\""

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode: where Python may not write it (PYTHONDONTWRITEBYTECODE, as on these machines),
# compile every package once at install (pyproject: compile-bytecode), or each process imports
# from source (sktime and sklearn: seconds each). Elsewhere (GitHub's runners) Python writes it
# on first import, which costs less than compiling every installed package (about 25 s).
UV_SYNC_FLAGS := $(if $(PYTHONDONTWRITEBYTECODE),,--no-compile-bytecode)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked $(UV_SYNC_FLAGS)
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Install the locked dependencies into .venv (uv)

.PHONY: params
params: install ## Compose conf/config.yaml into params.yaml (what `dvc exp run` does)
	$(TF) params $(ARGS)

# VERIFY=1 (the release build): re-hash every pulled file against data.dvc, naming any corrupted.
.PHONY: data
data: params ## Get data/raw at the version data.dvc names (pull, or regenerate and push)
	$(TF) data $(if $(filter 1,$(VERIFY)),--verify) $(ARGS)

.PHONY: remote
remote: install ## Use the configured DVC remote, or the embedded default where it has no credentials
	$(TF) remote $(ARGS)

.PHONY: check-lock
check-lock: install ## Fail unless dvc.lock records this commit's code, params and data
	$(TF) check-lock

.PHONY: lock-status
lock-status: install ## Record in reports/lock.json whether dvc.lock is current (for the PR gate)
	$(TF) check-lock --record-only

.PHONY: stage-deps
stage-deps: install ## Write each stage's code deps into dvc.yaml, from its imports
	$(TF) stage-deps

.PHONY: validate
validate: data stage-deps ## Validate data/raw: the pipeline's first stage (reports/validation.md)
	$(BIN)/dvc repro validate

.PHONY: repro
repro: data stage-deps ## Compose params, then run the DVC pipeline (validate → … → explain)
	$(BIN)/dvc repro

# The example's next day of actuals (the simulator's next quarter, `traffic-forecast actuals`).
DEMO_ACTUALS ?= data/incoming/traffic.csv

.PHONY: demo
demo: bento system-deps ## Install, pipeline, Bento, blue/green deploy, forecast; a day of actuals in
	$(TF) summary $(ARGS)
	$(TF) deploy latest $(ARGS)
	$(TF) verify $(ARGS)
	$(TF) actuals $(ARGS)
	$(TF) observe $(DEMO_ACTUALS) $(ARGS) --hours 24 --wait
	$(TF) verify $(ARGS)

# Fleet mode (data=fleet, loaded by the fleet commands): many series on local Spark. The demo's
# backtest is shorter than the single series' 26 weekly folds (FLEET_DEMO_ARGS): a backtest per
# series on 2 cores would otherwise take most of the demo's time. ARGS come after and win.
FLEET_DEMO_ARGS ?= backtest.n_folds=4

.PHONY: fleet-data fleet-validate fleet-train batch-predict fleet-demo
# The example's fleet is in data/raw/fleet, versioned by data.dvc: `make data` pulls it (or
# regenerates it). fleet-data writes a fleet of other settings (then data.dvc sees new data).
fleet-data: install ## Simulate a fleet of series (region x service) into data.fleet.raw_dir
	$(TF) fleet-data $(ARGS)

fleet-validate: install system-deps ## Validate every series on Spark (reports/fleet_validation.md)
	$(TF) fleet-validate $(ARGS)

fleet-train: install system-deps ## Backtest every series on Spark (reports/fleet_metrics.csv)
	$(TF) fleet-train $(ARGS)

# RUN_ID: the run to publish (default: from the data version and the settings, so a rerun replaces)
batch-predict: install system-deps ## Publish every series' next features.horizon hours (Spark)
	$(TF) batch-predict $(if $(RUN_ID),--run-id $(RUN_ID)) $(ARGS)

fleet-demo: install system-deps ## The fleet end to end on local Spark: data, validate, train, predict
	$(TF) data
	$(TF) fleet-validate $(ARGS)
	$(TF) fleet-train $(FLEET_DEMO_ARGS) $(ARGS)
	$(TF) batch-predict $(if $(RUN_ID),--run-id $(RUN_ID)) $(ARGS)
	$(TF) fleet-summary $(ARGS)
	$(TF) report $(if $(BASE),--base $(BASE))

# The PR report compares with BASE: in CI the pull request's base commit (from the event
# file), else main. `make report BASE=origin/release` compares with another ref.
BASE ?=
REPORT_WATERMARK := traffic-forecast report

.PHONY: report
report: install ## Write reports/report.md (+ .json) against BASE (default: the PR's base, or main)
	$(TF) report $(if $(BASE),--base $(BASE))

.PHONY: gate
gate: install ## Exit non-zero when reports/report.json failed the PR gate (the required check)
	$(TF) gate

.PHONY: comment
comment: ## Post reports/report.md on the PR with CML: one comment, updated on every push
	cml comment update --target=pr --watermark-title="$(REPORT_WATERMARK)" --no-publish \
		reports/report.md

.PHONY: job-summary
job-summary: ## Append REPORT (default reports/report.md) to the GitHub Actions job summary
	cat $(or $(REPORT),reports/report.md) >> "$$GITHUB_STEP_SUMMARY"

PORT ?= 3000

.PHONY: model
model: repro ## Save the trained model in the BentoML model store, its lineage as labels
	$(TF) package $(ARGS)

.PHONY: bento
bento: repro ## Save the model and build the Bento (service + that model) from bentofile.yaml
	$(TF) bento $(ARGS)

.PHONY: serve
serve: install ## Serve the newest Bento on PORT (default 3000): POST /forecast, /capacity
	$(TF) serve --port $(PORT) $(ARGS)

# BENTO: a Bento tag, `latest`, or an exported Bento file (what the release workflow passes).
BENTO ?= latest

# A deploy host runs each release from an environment of its own, made offline from the
# release's wheelhouse (`make deploy-env`, DEPLOY_ENV): a deploy fetches nothing and installs
# nothing on the host, and the old colour keeps the environment it was started from. Without
# DEPLOY_ENV (a developer's machine, `make demo`) the deploy targets use .venv and install
# what is missing, as before.
DEPLOY_ENV ?=
DEPLOY_PYTHON ?= python3.11
WHEELHOUSE ?= build/wheels
ROUTER_BIN ?= haproxy
ROUTER_PACKAGE ?= haproxy
ifdef DEPLOY_ENV
DEPLOY_TF := $(DEPLOY_ENV)/bin/traffic-forecast
DEPLOY_NEEDS := deploy-host
ROUTER_NEEDS :=
else
DEPLOY_TF := $(TF)
DEPLOY_NEEDS := install
ROUTER_NEEDS := system-deps
endif
# The environment of the newest release whose deploy succeeded: the rollback workflow's tooling.
DEPLOY_CURRENT = $(dir $(abspath $(DEPLOY_ENV)))current

.PHONY: deploy
deploy: $(DEPLOY_NEEDS) $(ROUTER_NEEDS) ## Blue/green deploy of BENTO behind the router (conf/deploy)
	$(DEPLOY_TF) deploy $(BENTO) $(ARGS)
ifdef DEPLOY_ENV
	@if [ "$(abspath $(DEPLOY_ENV))" != "$(DEPLOY_CURRENT)" ]; then \
		ln -sfn "$(notdir $(abspath $(DEPLOY_ENV)))" "$(DEPLOY_CURRENT).new" && \
		mv -Tf "$(DEPLOY_CURRENT).new" "$(DEPLOY_CURRENT)" && \
		echo "$(DEPLOY_CURRENT) -> $(notdir $(abspath $(DEPLOY_ENV)))"; fi
endif

.PHONY: rollback
rollback: $(DEPLOY_NEEDS) ## Back to the previous colour (instant within the rollback window)
	$(DEPLOY_TF) rollback $(ARGS)

.PHONY: status
status: $(DEPLOY_NEEDS) ## Live colour, versions and health of both slots
	$(DEPLOY_TF) status $(ARGS)

.PHONY: verify
verify: $(DEPLOY_NEEDS) ## A forecast through the router from the live model, or exit non-zero
	$(DEPLOY_TF) verify $(ARGS)

.PHONY: undeploy
undeploy: $(DEPLOY_NEEDS) ## Stop the router and both colours
	$(DEPLOY_TF) undeploy $(ARGS)

# What a release needs on a deploy host: everything is checked, nothing installed (no apt-get,
# no package index): a host is prepared once, by a person (README, "The production host").
.PHONY: deploy-host
deploy-host: ## Check this deploy host has DEPLOY_ENV's tooling and the router; install nothing
	@test -x "$(DEPLOY_TF)" || { \
		echo "no $(DEPLOY_TF): make the release's environment first (make deploy-env)"; exit 1; }
	@command -v $(ROUTER_BIN) >/dev/null || test -x /usr/sbin/$(ROUTER_BIN) || { \
		echo "no $(ROUTER_BIN) on this deploy host: install the Debian package" \
			"$(ROUTER_PACKAGE) (a deploy installs nothing)"; exit 1; }

# The release's wheels, made by the build job for a deploy host that reaches no index: every
# locked dependency of the service and the deploy tooling (downloads checked against uv.lock's
# hashes), uv itself, and the project's own wheel. The wheels are for DEPLOY_PYTHON's version
# and this machine's platform: the deploy host's must match (README). pip runs as a uv tool:
# .venv has no pip, and uv 0.13 cannot download wheels.
PIP_VERSION := 25.3
PIP_WHEEL = $(UV) tool run --python $(DEPLOY_PYTHON) --from pip==$(PIP_VERSION) pip wheel \
	--quiet --disable-pip-version-check --no-deps --wheel-dir "$(WHEELHOUSE)"
.PHONY: wheelhouse
wheelhouse: | $(UV) ## The wheels a release's environment is made of, into WHEELHOUSE (build/wheels)
	rm -rf "$(WHEELHOUSE)" build/requirements.locked.txt
	mkdir -p "$(WHEELHOUSE)"
	$(UV) export --frozen --no-dev --no-emit-project --quiet -o build/requirements.locked.txt
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --quiet \
		-o "$(WHEELHOUSE)/requirements.txt"
	$(PIP_WHEEL) --require-hashes -r build/requirements.locked.txt
	$(PIP_WHEEL) uv==$(UV_VERSION)
	$(UV) build --wheel --quiet --out-dir "$(WHEELHOUSE)"

# The environment is made in place (a venv cannot move) and marked complete last: a run cut
# short leaves no marker, and the next run makes it again. pip (bundled with Python, offline)
# installs only uv from the wheelhouse; uv installs the rest. The service's wheels carry a
# sdist-built one (antlr4), whose hash is not uv.lock's: the install trusts the wheelhouse,
# which the build checked against the lock and the artifact store against its digest.
.PHONY: deploy-env
ifdef DEPLOY_ENV
deploy-env: $(DEPLOY_ENV)/.complete ## Make DEPLOY_ENV from WHEELHOUSE, offline (a deploy host)
$(DEPLOY_ENV)/.complete:
	@test ! -e "$(DEPLOY_ENV)" || test -f "$(DEPLOY_ENV)/pyvenv.cfg" || { \
		echo "refused: $(DEPLOY_ENV) exists and is not a virtual environment"; exit 1; }
	$(DEPLOY_PYTHON) -m venv --clear "$(DEPLOY_ENV)"
	"$(DEPLOY_ENV)/bin/python" -m pip install --isolated --quiet --disable-pip-version-check \
		--no-index --find-links "$(WHEELHOUSE)" uv==$(UV_VERSION)
	"$(DEPLOY_ENV)/bin/uv" pip install --python "$(DEPLOY_ENV)/bin/python" --no-config \
		--offline --no-index --find-links "$(WHEELHOUSE)" --no-cache --strict --quiet \
		$(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode) \
		-r "$(WHEELHOUSE)/requirements.txt" "$(WHEELHOUSE)"/traffic_forecast-*.whl
	touch "$@"
else
deploy-env:
	@echo "DEPLOY_ENV is not set: name the release's environment (e.g. <state dir>/releases/<sha>)"
	@exit 1
endif

.PHONY: container
container: install ## Container image of BENTO (bentoml containerize + docker push to $REGISTRY)
	$(TF) container $(BENTO)

# A registry credential goes only to the host it was configured for (REGISTRY_LOGIN_HOST: the
# workflow names it beside the credential), compared exactly: a REGISTRY of
# ghcr.io.example.com/x must not receive a ghcr.io token. A GitHub token goes to ghcr.io only.
.PHONY: registry-login
registry-login: ## docker login to $REGISTRY's host if it is $REGISTRY_LOGIN_HOST (password on stdin)
	@host="$${REGISTRY%%/*}"; \
	if [ -z "$${REGISTRY_LOGIN_HOST:-}" ] || [ "$$host" != "$$REGISTRY_LOGIN_HOST" ]; then \
		echo "refused: the credential is for '$${REGISTRY_LOGIN_HOST:-}'," \
			"REGISTRY names host '$$host'"; exit 1; fi; \
	case "$$REGISTRY_PASSWORD" in ghs_*|ghp_*|gho_*|ghu_*|ghr_*|github_pat_*) \
		[ "$$host" = ghcr.io ] || { echo "refused: a GitHub token goes to ghcr.io only"; \
			exit 1; };; esac; \
	printf '%s' "$$REGISTRY_PASSWORD" | docker login "$$host" -u "$$REGISTRY_USER" --password-stdin

# Production deploys and rollbacks run from the release branch only. The workflows' production
# jobs are skipped on any other ref; this, their first step, fails them should that be lost.
RELEASE_REF := refs/heads/release

.PHONY: release-ref
release-ref: ## Fail unless GITHUB_REF is the release branch (production jobs' first step)
	@if [ "$${GITHUB_REF:-}" != "$(RELEASE_REF)" ]; then \
		echo "refused: production deploys and rolls back from $(RELEASE_REF) only," \
			"not from '$${GITHUB_REF:-}'"; exit 1; fi
	@echo "$(RELEASE_REF): may deploy to production"

.PHONY: actuals
actuals: install ## Put new actuals in monitor.actuals_dir (example data: the drifted quarter)
	$(TF) actuals $(ARGS)

.PHONY: monitor
monitor: install ## Drift and decay of the served model: reports/monitoring.md; exit 1 on a breach
	$(TF) monitor $(ARGS)

.PHONY: retrain-pr
retrain-pr: install ## If the monitor asks for it (or RETRAIN_FORCE=true): retrain, open a PR
	$(TF) retrain --propose $(if $(filter true,$(RETRAIN_FORCE)),--force) $(ARGS)

.PHONY: drift-demo
drift-demo: repro ## The loop locally: drifted data → monitor flags it → retrain → PR report
	$(TF) drift-demo $(ARGS)

# Champion vs challenger on live traffic (README, Experiments): BENTO is the challenger; it runs
# in the idle colour beside the live one (conf/experiment: shadow or split) until stopped, or
# until its guard finds a breached guardrail.
.PHONY: experiment-start experiment-stop experiment-status experiment-demo
experiment-start: $(DEPLOY_NEEDS) ## Run BENTO as a challenger beside the live model (conf/experiment)
	$(DEPLOY_TF) experiment start $(BENTO) $(ARGS)

experiment-stop: $(DEPLOY_NEEDS) ## End the experiment: the live model answers every request again
	$(DEPLOY_TF) experiment stop $(ARGS)

experiment-status: $(DEPLOY_NEEDS) ## The experiment's arms, mode and course (JSON)
	$(DEPLOY_TF) experiment status $(ARGS)

experiment-demo: bento system-deps ## Champion vs its baseline on simulated live hours, to a decision
	$(TF) experiment demo $(ARGS)

# The experiment's daily decision (the experiment workflow, on the deploy host's runner): the
# analysis of the deployment's prediction logs against the actuals, its comment, and on
# "promote" a pull request that makes the challenger the release (a person merges it).
.PHONY: experiment-report experiment-post experiment-promote
experiment-report: install ## Champion vs challenger on live hours: reports/experiment.md (+ .json)
	$(TF) experiment analyse $(ARGS)

experiment-post: install ## Post reports/experiment.md on the challenger's PR (issue, commit) with CML
	$(TF) experiment post $(ARGS)

experiment-promote: install ## On a "promote" decision: a PR into release from the challenger's commit
	$(TF) experiment promote $(ARGS)

.PHONY: k8s
k8s: install ## Write the Argo Rollouts blue/green manifests (deploy/kubernetes/) from conf/deploy
	$(TF) k8s --out deploy/kubernetes/traffic-forecast.yaml $(ARGS)

# Alerts as code (README, Alerts): the rules in deploy/prometheus/, a local Prometheus on them.
.PHONY: observe observe-status observe-stop alerts
observe: $(DEPLOY_NEEDS) system-deps ## A local Prometheus on the deployment and the alert rules (conf/prometheus)
	$(DEPLOY_TF) prometheus start $(ARGS)
observe-status: $(DEPLOY_NEEDS) ## What the local Prometheus scrapes, and the alerts pending or firing (JSON)
	$(DEPLOY_TF) prometheus status $(ARGS)
observe-stop: $(DEPLOY_NEEDS) ## Stop the local Prometheus (make undeploy stops it too)
	$(DEPLOY_TF) prometheus stop $(ARGS)
alerts: install ## After editing deploy/prometheus/rules.yml: the PrometheusRule and Grafana dashboard
	$(TF) alerts

.PHONY: bento-export
bento-export: repro ## Build the Bento and export it to build/traffic-forecast.bento (release)
	$(TF) bento --export build/traffic-forecast.bento $(ARGS)

# Debian packages the tests and benchmarks start themselves: HAProxy (the blue/green router),
# wrk (load), PostgreSQL (the shared store of live actuals, whose binaries are off PATH, in
# /usr/lib/postgresql/<version>/bin) and Prometheus (promtool, and `make observe`). Installed
# with apt-get when missing (as root, or through sudo). A production host has them already: its
# deploy installs nothing.
.PHONY: system-deps
system-deps: ## Install the Debian packages the tests start (haproxy, wrk, postgresql, java, prometheus) if missing
	@missing=""; \
	{ test -x /usr/sbin/haproxy || command -v haproxy >/dev/null; } || missing="$$missing haproxy"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || \
		missing="$$missing prometheus"; \
	{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v pg_ctl >/dev/null; } || \
		missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing$$missing with apt-get"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Two streams side by side, each test run once (CI runs them all). One stream: the tests that
# start no server and run no workflow, on 2 workers, a module per worker at a time (its fixtures
# made once); then the workflow runs (act), two modules at a time, each in its own repository.
# The other stream: the tests that start servers (marker `serial`: bentoml serve, HAProxy, the
# quickstart), one at a time; they mostly wait, so the CPU-bound tests beside them cost them
# little. Each stream's output is printed when it ends. Exit code 5 is "no test selected"
# (PYTEST_ARGS may pick tests of one kind only).
PYTEST := $(BIN)/pytest
.PHONY: test
test: install system-deps ## Install and run every test, slow ones included (what CI runs)
	$(MAKE) --no-print-directory -j2 --output-sync=target test-servers test-unit-workflows

.PHONY: test-unit-workflows test-servers
test-unit-workflows:
	$(PYTEST) -n 2 --dist loadscope -m "not serial" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PYTEST) -n 2 --dist loadscope -m "serial and workflow" $(PYTEST_ARGS) || [ $$? -eq 5 ]
test-servers:
	$(PYTEST) -m "serial and not workflow" $(PYTEST_ARGS) || [ $$? -eq 5 ]

.PHONY: test-fast
test-fast: install system-deps ## Run the tests that start no server and no workflow
	$(PYTEST) -n 2 --dist loadscope -m "not slow" $(PYTEST_ARGS)

.PHONY: lint
lint: install system-deps ## ruff, mypy (strict on src/), zizmor, actionlint, promtool check rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/zizmor --offline .github/workflows
	$(BIN)/actionlint
	promtool check rules deploy/prometheus/rules.yml
	$(TF) alerts --check

.PHONY: format
format: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: bench
bench: bento system-deps ## Benchmarks: validation, pipeline, candidates, serving (wrk), live replay, release, A/B rule
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/replay.py
	$(BIN)/python benchmarks/release.py
	$(BIN)/python benchmarks/experiment.py
	$(BIN)/python benchmarks/experiment_routing.py

.PHONY: bench-fleet
bench-fleet: install system-deps ## Fleet mode on Spark: validation, global/local forecasts, scaling, out of core (an hour)
	$(BIN)/python benchmarks/fleet.py $(ARGS)

.PHONY: clean
clean: ## Remove generated data and reports (data/raw and the DVC cache stay)
	rm -rf data/validated data/features models reports/*.png
