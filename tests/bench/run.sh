#!/bin/bash
# make bench: runs every benchmark; each prints its own figures and never fails on a timing.
# Usage: tests/bench/run.sh BUILD_DIR
BUILD=${1:-build}
"$(dirname "$0")/grader.sh" "$BUILD"
