# Breakwater — the commands a person runs. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export SAM_CLI_TELEMETRY := 0
# cargo-lambda and zig (for the ARM64 builds) live in the project's .venv.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

ARM64_TARGET := aarch64-unknown-linux-gnu
# Every Lambda binary of the workspace: the hello-world floor first (the bench's baseline).
LAMBDA_PACKAGES := hello-floor sandbox-probe budget tiering spot rollback failover
LAMBDA_BINARIES := hello-floor probe budget tiering spot rollback failover
# What every local release target builds, one set: the same packages unify the same features, so
# `make up`, `invoke`, `drill`, `demo` and `bench` reuse one build instead of recompiling the SDK.
RELEASE_BUILD := cargo build --release -p breakwater-sandbox -p breakwater-cli $(addprefix -p ,$(LAMBDA_PACKAGES))
BENCH_FLAGS ?=
# `make fuzz`: each target runs FUZZ_SECONDS (libFuzzer's -max_total_time), seeded from events/.
FUZZ_TARGETS ?= event_router budgets_message webhook failover_plan
FUZZ_SECONDS ?= 60
fuzz_seeds_event_router := events
fuzz_seeds_budgets_message := events/budget/messages
fuzz_seeds_webhook := events/rollback
fuzz_seeds_failover_plan := fuzz/seeds/failover_plan events/failover

SANDBOX_VENV := .venv/.installed
SAM_VENV := .venv-sam/.installed
CHECKOV_VENV := .venv-checkov/.installed
ARM64_STAMP := target/.arm64-target

.PHONY: help setup build test lint iam fmt demo gameday bench fuzz up down invoke drill deploy package clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(SANDBOX_VENV): requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(SAM_VENV): requirements-sam.txt
	python3 -m venv .venv-sam
	.venv-sam/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

$(CHECKOV_VENV): requirements-checkov.txt
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(ARM64_STAMP):
	rustup target add $(ARM64_TARGET)
	mkdir -p target && touch $@

setup: $(SANDBOX_VENV) $(SAM_VENV) $(CHECKOV_VENV) $(ARM64_STAMP) ## install the Python tools (.venv*) and the ARM64 target

build: $(SANDBOX_VENV) $(ARM64_STAMP) ## ARM64 release binaries with cargo-lambda (target/lambda/<bin>/bootstrap)
	cargo lambda build --release --arm64 $(addprefix -p ,$(LAMBDA_PACKAGES))

test: $(SANDBOX_VENV) ## unit and integration tests (moto, the fault proxy, the real binaries)
	@# The binaries the integration tests run, built with the tests' features (`--tests`: the
	@# dev-dependencies' features unified), so that `cargo test` reuses them and every SDK crate is
	@# compiled once, not twice (a second build costs ~8 minutes and ~3 GB of target/).
	cargo build --workspace --bins --tests
	cargo test --workspace

lint: $(SANDBOX_VENV) $(SAM_VENV) $(CHECKOV_VENV) ## rustfmt, clippy -D warnings, sam validate --lint, checkov (template and SAM-expanded)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@# Both environments of samconfig.toml: the template linted in each region it is deployed to.
	.venv-sam/bin/sam validate --lint --config-env primary
	.venv-sam/bin/sam validate --lint --config-env secondary
	@# Every aws, make and sam command in docs/ exists as written (the sam ones against this SAM CLI).
	.venv/bin/python sandbox/docs_commands.py --sam .venv-sam/bin/sam
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download
	@# The roles and the Function URL exist only after the SAM transform: scan what CloudFormation gets.
	mkdir -p target && .venv/bin/python sandbox/iam_template.py --expanded > target/template.expanded.json
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov -f target/template.expanded.json --framework cloudformation --quiet --compact --skip-download

iam: $(SANDBOX_VENV) ## the IAM contract: each function's AWS operations, their IAM actions, and the template's grants
	@cd sandbox && ../.venv/bin/python iam_contract.py --markdown

fmt: ## format the code
	cargo fmt --all

demo: $(SANDBOX_VENV) ## the game day: every scene through the release binaries; report in target/gameday/
	$(RELEASE_BUILD)
	target/release/sandbox demo --bin-dir target/release

FAULTS ?= 0.2
KILLS ?= 0.1
SEED ?= 7
# Where `make gameday` writes its report (one per run when several seeds play side by side).
GAMEDAY_DIR ?= target/gameday-faults
gameday: $(SANDBOX_VENV) ## the game day under FAULTS (share of AWS calls) and KILLS (crashes); report in target/gameday-faults/
	$(RELEASE_BUILD)
	target/release/sandbox gameday --faults $(FAULTS) --kills $(KILLS) --seed $(SEED) --bin-dir target/release --report-dir $(GAMEDAY_DIR)

bench: build ## one table: size, init, cold start → first response, invoke p50/p99, RSS beside the floor, and each function's own figure
	$(RELEASE_BUILD)
	rm -rf target/bench
	target/release/sandbox bench --bin-dir target/release --arm64-dir target/lambda $(BENCH_FLAGS) $(LAMBDA_BINARIES)
	@# The budget figure runs in the sandbox binary just built (the example under -p budget alone
	@# unified features differently and compiled the AWS SDK crates a third time).
	target/release/sandbox budget-bench
	target/release/sandbox sweep-bench --bin-dir target/release --buckets 1000
	target/release/sandbox spot-bench --warnings 20
	target/release/sandbox rollback-bench --events 20
	target/release/sandbox failover-bench --runs 3
	@echo; echo "== make bench: the summary"; target/release/sandbox bench-summary

fuzz: ## run each fuzz target for FUZZ_SECONDS (cargo fuzz on nightly; FUZZ_TARGETS to choose)
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@set -e; $(foreach t,$(FUZZ_TARGETS),\
	  mkdir -p fuzz/corpus/$(t); echo "== fuzz $(t) for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && cargo +nightly fuzz run --sanitizer none --debug-assertions $(t) \
	    corpus/$(t) $(addprefix ../,$(fuzz_seeds_$(t))) -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) \
	    || { echo "fuzz $(t) failed: the input is in fuzz/artifacts/$(t)/"; exit 1; };)

up: $(SANDBOX_VENV) ## start the sandbox in the background: moto, the seeded estate, the emulators, the Lambda API (for `make invoke`, `breakwater`)
	$(RELEASE_BUILD)
	target/release/sandbox up

# The commands of docs/dr-drill.md's block between the `make drill` markers, run as written.
DRILL_DOC := docs/dr-drill.md
drill: $(SANDBOX_VENV) ## the DR drill of docs/dr-drill.md, its exact `breakwater` commands, on a fresh sandbox (make down first)
	$(RELEASE_BUILD)
	target/release/sandbox down
	target/release/sandbox up
	@set -e; source target/sandbox/us-west-2.env; export PATH="$(CURDIR)/target/release:$$PATH"; \
	  sed -n '/<!-- make drill: begin -->/,/<!-- make drill: end -->/p' $(DRILL_DOC) | grep '^breakwater ' > target/sandbox/drill.sh; \
	  test -s target/sandbox/drill.sh || { echo "no breakwater command between the make drill markers of $(DRILL_DOC)"; exit 1; }; \
	  cd target/sandbox; while read -r line; do echo; echo "\$$ $$line"; eval "$$line" < /dev/null; done < drill.sh
	@echo; echo "the sandbox is still up (breakwater history, breakwater status; the report's files are in target/sandbox/); make down stops it"

down: ## stop what `make up` started
	@if [ -x target/release/sandbox ]; then target/release/sandbox down; else echo "nothing to stop"; fi

invoke: ## run FUNCTION once with EVENT (a file in events/) against the `make up` sandbox
	@test -n "$(FUNCTION)" && test -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=probe EVENT=events/probe/record.json"; exit 2; }
	$(RELEASE_BUILD)
	target/release/sandbox invoke $(FUNCTION) $(EVENT) --bin-dir target/release

# `make deploy ENV=primary` then `make deploy ENV=secondary`: samconfig.toml's two environments.
ENV ?=
SAM_ENVS := primary secondary
deploy: $(SAM_VENV) $(SANDBOX_VENV) $(ARM64_STAMP) ## sam build (ARM64) + sam deploy of ENV=primary|secondary (samconfig.toml)
	@case " $(SAM_ENVS) " in *" $(ENV) "*) ;; *) echo "usage: make deploy ENV=primary|secondary (the environments of samconfig.toml)"; exit 2;; esac
	.venv-sam/bin/sam validate --lint --config-env $(ENV)
	.venv-sam/bin/sam build --config-env $(ENV)
	.venv-sam/bin/sam deploy --config-env $(ENV)

# The build does not depend on the environment (one template, one code base): it runs once.
package: $(SAM_VENV) $(SANDBOX_VENV) $(ARM64_STAMP) ## what `make deploy` checks and builds (both environments linted, one ARM64 sam build), deploying nothing
	@set -e; for env in $(SAM_ENVS); do \
	  echo "== $$env: sam validate --lint"; \
	  .venv-sam/bin/sam validate --lint --config-env $$env; \
	done
	.venv-sam/bin/sam build --config-env primary

clean: ## remove build output and the Python environments
	cargo clean
	rm -rf .venv .venv-sam .venv-checkov .aws-sam
