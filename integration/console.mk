# make console-screenshots — a full-page PNG of each console screen (runs, browse, history, diff,
# restore form, preview, progress, result; signed in through an OpenID Connect provider), taken by
# the console's browser tests (TestConsole, TestConsoleSignIn: a headless Chromium against a private
# MinIO) into the git-ignored .cache/console-screenshots/.
# Included from the Makefile (MINIO_BIN and its rule come from there).

CONSOLE_SCREENSHOTS := $(CURDIR)/.cache/console-screenshots

.PHONY: console-screenshots

console-screenshots: $(MINIO_BIN)
	@mkdir -p $(CONSOLE_SCREENSHOTS)
	BUCKETVAULT_REQUIRE_SERVERS=1 BUCKETVAULT_SCREENSHOTS=$(CONSOLE_SCREENSHOTS) \
		go test -count=1 -tags integration -run '^TestConsole(SignIn)?$$' -timeout 10m ./integration/
	@echo "screenshots in $(CONSOLE_SCREENSHOTS):"; ls $(CONSOLE_SCREENSHOTS)
