# make bench — the benchmark of issue #4 (results and how to read them: integration/README.md, "Performance (make bench)"): a private MinIO, the server's
# CopyObject ceiling, bucketvault's full, idle and changed runs, rclone and aws s3 sync, peak memory.
# Scale it down with e.g. BENCH_FLAGS='-reps 1 -small 2000 -big 0 -large 64Mi'.
# Included from the Makefile (MINIO_BIN and its rule come from there).
#
# Scenarios of issues 13 and 15 (integration/cmd/bench/destinations.go):
# - two destinations: full runs of the small set to the backup bucket alone and to it and a second
#   bucket on the same server (DESTINATIONS), with the ceiling, interleaved; part of `make bench`
#   (-destinations=false skips it), alone with `make bench-destinations` (6 minutes on a
#   loaded 2-core machine).
# - memory at scale: full and idle runs with one and two destinations at each count of -scale, peak
#   RSS and Go heap; not part of `make bench`: `make bench-scale` (23 minutes at 20,000 and
#   200,000 objects on a 2-core machine, most of it the 200,000-object upload and full runs).
# - listing at scale (-listing N): `make bench BENCH_FLAGS='-only listing -listing 200000'`.
# -only listing,destinations,scale runs just those; the flags combine with BENCH_FLAGS.

BENCH_FLAGS ?=
BENCH_SCALE ?= 20000,200000

.PHONY: bench bench-peers bench-destinations bench-scale

bench: $(MINIO_BIN) bench-peers
	go run ./integration/cmd/bench $(BENCH_FLAGS)

bench-destinations: $(MINIO_BIN)
	go run ./integration/cmd/bench -only destinations -out .cache/bench/destinations.json $(BENCH_FLAGS)

bench-scale: $(MINIO_BIN)
	go run ./integration/cmd/bench -only scale -scale $(BENCH_SCALE) -out .cache/bench/scale.json $(BENCH_FLAGS)

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
