#!/usr/bin/env bash
# The one command that sets up a fresh Debian/Ubuntu machine and runs every test: unit, integration (root,
# loop devices, qemu-user chroots, real mmdebstrap builds) and end-to-end. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-host.sh --test
# A cache shared by the integration tests of this machine: the Debian base is built once, then reused.
export SIMPLEX_PI_TEST_CACHE="${SIMPLEX_PI_TEST_CACHE:-/var/tmp/simplex-pi-test-cache}"
npx tsc --noEmit
# The two VM files at once, and, on the worker the shorter one leaves idle, the files that can run beside them; then
# everything else one file at a time (vitest.config.ts says why). vitest starts the longest (largest) files first.
npx vitest run --project vm --project beside-vms --fileParallelism --maxWorkers 2
npx vitest run --project host
