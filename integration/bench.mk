# make bench — the benchmark of issue #4 (results and how to read them: integration/README.md, "Performance (make bench)"): a private MinIO, the server's
# CopyObject ceiling, bucketvault's full, idle and changed runs, rclone and aws s3 sync, peak memory.
# Scale it down with e.g. BENCH_FLAGS='-reps 1 -small 2000 -big 0 -large 64Mi'.
# Included from the Makefile (MINIO_BIN and its rule come from there).

BENCH_FLAGS ?=

.PHONY: bench bench-peers

bench: $(MINIO_BIN) bench-peers
	go run ./integration/cmd/bench $(BENCH_FLAGS)

# The peers are installed from Debian only when missing, and only when running as root;
# otherwise the benchmark reports them as not present.
bench-peers:
	@missing=""; \
	command -v rclone >/dev/null 2>&1 || missing="$$missing rclone"; \
	command -v aws >/dev/null 2>&1 || missing="$$missing awscli"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing from Debian for the benchmark"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing >/dev/null \
				|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing >/dev/null; } \
				|| echo "could not install$$missing; the benchmark reports them as not present"; \
		else \
			echo "not root:$$missing not installed; the benchmark reports them as not present"; \
		fi; \
	fi
