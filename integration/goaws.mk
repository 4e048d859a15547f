# goaws, a local SNS/SQS server, for the SNS notification test (integration/notify_test.go): built
# from the Go module proxy at a pinned version, like MinIO.
GOAWS_VERSION := v0.4.5
GOAWS_BIN     := $(CACHE)/goaws-$(GOAWS_VERSION)/goaws
export GOAWS_BIN

.PHONY: goaws
$(GOAWS_BIN):
	@echo "building goaws $(GOAWS_VERSION)"
	GOBIN=$(dir $(GOAWS_BIN)) CGO_ENABLED=0 GOFLAGS= go install github.com/Admiral-Piett/goaws/app/cmd@$(GOAWS_VERSION)
	mv $(dir $(GOAWS_BIN))cmd $(GOAWS_BIN)

goaws: $(GOAWS_BIN)

integration: $(GOAWS_BIN)
