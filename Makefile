# bucketvault — see README.md. The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# MinIO, the local S3 server, is built from the Go module proxy at this pinned version.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
CACHE         := $(CURDIR)/.cache
MINIO_BIN     := $(CACHE)/minio-$(MINIO_VERSION)/minio
export MINIO_BIN

FUNCTIONS := lister copier reporter planner console verifier
BUILD     := $(CURDIR)/build

.PHONY: help demo test unit integration run restore build bucketvault minio fmt-check vet clean

help:
	@echo "make demo   - zero setup: start a private MinIO, back up sample data twice, show the result, stop"
	@echo "make test   - everything: vet, unit tests, integration tests against a real MinIO"
	@echo "make bucketvault - build the bucketvault command into bin/bucketvault (bucketvault --help)"
	@echo "make run    - one backup (bucketvault backup) against AWS_ENDPOINT_URL_S3 / AWS_* and SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET"
	@echo "make restore - one restore: RESTORE_AT (time or backup execution), RESTORE_PREFIX, TARGET_BUCKET, DRY_RUN"
	@echo "make build  - zipped linux/arm64 bootstrap per function in build/"
	@echo "make minio  - build the pinned MinIO into .cache/ (done by demo and test when missing)"

$(MINIO_BIN):
	@echo "building MinIO $(MINIO_VERSION) (about 3 minutes, once)"
	GOBIN=$(dir $(MINIO_BIN)) CGO_ENABLED=0 GOFLAGS= go install github.com/minio/minio@$(MINIO_VERSION)

minio: $(MINIO_BIN)

demo: $(MINIO_BIN)
	go run ./integration/cmd/demo

BIN := $(CURDIR)/bin/bucketvault

# The bucketvault command; rebuilt when any Go file changed.
$(BIN): go.mod go.sum $(shell find shared statemachine functions -name '*.go' -not -name '*_test.go' 2>/dev/null) statemachine/backup.asl.json statemachine/restore.asl.json statemachine/verify.asl.json
	@mkdir -p $(dir $(BIN))
	go build -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o $(BIN) ./statemachine/cmd/bucketvault

bucketvault: $(BIN)

# make run / make restore: thin wrappers over the command, reading the variables they always read
# (EXECUTION_INPUT, when set, is the execution input as JSON).
run: $(BIN)
	$(BIN) backup --json $(if $(EXECUTION_INPUT),--input '$(EXECUTION_INPUT)')

restore: $(BIN)
	$(BIN) restore --json $(if $(EXECUTION_INPUT),--input '$(EXECUTION_INPUT)',--at "$(RESTORE_AT)" $(if $(RESTORE_PREFIX),--prefix "$(RESTORE_PREFIX)") $(if $(TARGET_BUCKET),--to "$(TARGET_BUCKET)") $(if $(filter true,$(DRY_RUN)),--dry-run))

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...
	go vet -tags integration ./integration/...

unit:
	go test -count=1 ./...

# Integration tests fail (never skip) when MinIO or the AWS CLI is missing.
integration: $(MINIO_BIN)
	BUCKETVAULT_REQUIRE_SERVERS=1 go test -count=1 -tags integration -timeout 40m ./integration/...

test: fmt-check vet unit integration

build:
	@mkdir -p $(BUILD)
	@for fn in $(FUNCTIONS); do \
		GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w -buildid=' \
			-o $(BUILD)/$$fn/bootstrap ./functions/$$fn || exit 1; \
		go run ./infra/cmd/zipasset $(BUILD)/$$fn/bootstrap $(BUILD)/$$fn.zip || exit 1; \
		echo "built $(BUILD)/$$fn.zip"; \
	done

clean:
	rm -rf $(BUILD)

# goaws, the local SNS server the notification test publishes to (make goaws).
include integration/goaws.mk

# Throughput benchmark against the S3 server's own ceiling (make bench).
-include integration/bench.mk

# Screenshots of the restore console from its browser tests (make console-screenshots).
-include integration/console.mk

# AWS deployment (CDK): synth, deploy, destroy, and the checks make test runs on the definition.
-include infra/infra.mk
