#!/usr/bin/env bash
# mypy strict over every workspace member, one member per run: test modules of different members share names.
set -euo pipefail
status=0
for member in libs/*/ services/*/; do
  paths=()
  for sub in src tests bench; do [ -d "$member$sub" ] && paths+=("$member$sub"); done
  [ ${#paths[@]} -eq 0 ] && continue
  uv run --frozen mypy "${paths[@]}" || status=1
done
[ -d tests ] && { uv run --frozen mypy tests conftest.py || status=1; }
# The `make bench` scripts (run as scripts from bench/, so checked on their own).
[ -d bench ] && { uv run --frozen mypy bench || status=1; }
exit $status
