#!/usr/bin/env bash
# layering.sh: the folders of src/ include only what their layer may see
# (docs/ARCHITECTURE.md, "Layers"), checked by grepping #include lines:
#
#   engine/    the diff engine: nothing of its consumers or of any target
#   emit/      renderers over the engine: no target, no strategy, no CLI
#   core/      the ground floor: no target, no daemon, no renderer
#   config/    the configuration: core/ only
#   obs/       metrics: core/ only
#   strategy/  the strategy table: no target's header (targets plug into it)
#   cli/       the commands: strategies only through the table
#   d1/, turso/ each target sees no other target
#
# First a planted violation must be found (the check can fail), then the
# tree is checked.  One PASS or FAIL line per rule.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT" || exit 1
fail=0

# rule FOLDER FORBIDDEN... : prints the offending lines of FOLDER's files
offenders() {
  local dir=$1; shift
  local pat
  pat=$(printf '%s|' "$@")
  pat=${pat%|}
  grep -EnH "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"($pat)/" "$dir"/*.[ch] 2>/dev/null
}

rule() {
  local dir=$1; shift
  local found
  found=$(offenders "src/$dir" "$@")
  if [[ -n $found ]]; then
    echo "FAIL layering: src/$dir/ includes from $*:"
    echo "$found" | sed 's/^/    /'
    fail=1
  else
    echo "PASS layering: src/$dir/ includes nothing from $*"
  fi
}

# The check itself: a planted include must be found.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/engine"
printf '#include <stdio.h>\n  #  include "emit/sql.h"\n' > "$tmp/engine/x.c"
if [[ -n $(offenders "$tmp/engine" emit d1) ]] && [[ -z $(offenders "$tmp/engine" d1 turso) ]]; then
  echo "PASS layering: the check finds a planted include and only that"
else
  echo "FAIL layering: the check does not find a planted include"
  fail=1
fi

rule engine emit d1 turso strategy cli daemon obs config
rule emit d1 turso strategy cli daemon
rule core d1 turso daemon emit cli
rule config d1 turso strategy emit engine cli daemon obs
rule obs d1 turso strategy emit engine cli daemon config
rule strategy d1 turso cli daemon
rule cli d1 turso
rule d1 turso cli daemon
rule turso d1 cli daemon
rule daemon d1 turso strategy cli
exit $fail
