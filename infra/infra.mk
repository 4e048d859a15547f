# AWS deployment (CDK, infra/): included by the Makefile. See infra/README.md.
#
#   make synth     offline: build the functions, write infra/cdk.out/BucketVault.template.json
#   make deploy    SOURCE_BUCKET_NAME=my-bucket [CDK_ARGS='-c alarmEmail=me@example.com ...']
#   make destroy   the same settings as deploy (the app is synthesized again); buckets are kept
#   make cdk-bootstrap CDK_ENVIRONMENT=aws://123456789012/us-east-1   once per account and Region
#   make asl-validate   asl-validator on every statemachine/*.asl.json (part of make test)

INFRA      := $(CURDIR)/infra
INFRA_NPM  := $(INFRA)/node_modules/.bucketvault-npm-ci
CDK        := $(INFRA)/node_modules/.bin/cdk
ASL_VALIDATOR := $(INFRA)/node_modules/.bin/asl-validator

# jsii (the CDK's Go bindings run the CDK in Node) warns loudly about Node versions it no longer
# supports; the project's Node 20 works.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Synthesis needs no AWS account: no credential look-up on an instance-metadata address, no
# telemetry, notices or version check.
CDK_OFFLINE := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true AWS_EC2_METADATA_DISABLED=true

# The bucket to back up. synth uses an example name when it is not set; deploy and destroy pass
# it only when set (it may also sit in infra/cdk.json's context).
SOURCE_BUCKET_NAME ?=
CDK_ARGS ?=
CDK_SOURCE_ARG = $(if $(SOURCE_BUCKET_NAME),-c sourceBucketName=$(SOURCE_BUCKET_NAME))

.PHONY: infra-deps synth deploy destroy cdk-bootstrap asl-validate

# Node tools at the versions pinned in infra/package-lock.json (npm ci also writes
# node_modules/go.mod so that Go's ./... patterns skip the Go files npm packages ship).
$(INFRA_NPM): $(INFRA)/package.json $(INFRA)/package-lock.json
	cd $(INFRA) && npm ci --no-audit --no-fund
	@touch $@

infra-deps: $(INFRA_NPM)

asl-validate: $(INFRA_NPM)
	@mkdir -p $(INFRA)/cdk.out
	go run ./infra/cmd/aslrender $(INFRA)/cdk.out/backup.rendered.asl.json
	$(ASL_VALIDATOR) $(foreach f,$(wildcard statemachine/*.asl.json),--json-path $(f)) \
		--json-path $(INFRA)/cdk.out/backup.rendered.asl.json

synth: build $(INFRA_NPM)
	cd $(INFRA) && $(CDK_OFFLINE) $(CDK) synth --no-notices --quiet -o cdk.out \
		-c sourceBucketName=$(or $(SOURCE_BUCKET_NAME),example-source-bucket) $(CDK_ARGS)
	@test -s $(INFRA)/cdk.out/BucketVault.template.json && echo "wrote infra/cdk.out/BucketVault.template.json"

deploy: build $(INFRA_NPM)
	cd $(INFRA) && $(CDK) deploy BucketVault $(CDK_SOURCE_ARG) $(CDK_ARGS)

destroy: build $(INFRA_NPM)
	cd $(INFRA) && $(CDK) destroy BucketVault $(CDK_SOURCE_ARG) $(CDK_ARGS)

cdk-bootstrap: $(INFRA_NPM)
	cd $(INFRA) && $(CDK) bootstrap $(CDK_ENVIRONMENT)

# make test also validates the definitions and synthesizes the stack with the CDK CLI.
test: asl-validate synth
