#!/usr/bin/env bash
# The main job end to end with the command-line tool: encrypt a sample file into
# the folder store ./demo-store, verify it, decrypt it, compare, show the data map.
# Pass a file to use it instead of the generated 24 MiB sample. What it makes
# stays for you to look at: the store in ./demo-store, the sample, its data map
# and the restored copy in ./demo-out (both ignored by git; delete them at will).
set -euo pipefail
cd "$(dirname "$0")/.."
SELF_ENCRYPTION_EXTRAS="" source scripts/bootstrap.sh  # the package only, no test tools
se=.venv/bin/self-encryption
work=demo-out
mkdir -p "$work"
rm -f "$work/sample.sedm"
sample=${1:-}
if [ -z "$sample" ]; then
  sample="$work/sample.bin"
  .venv/bin/python - "$sample" <<'PY'
import os, sys
half = 12 << 20
text = b"".join(b"sample line %08d: self-encryption keeps what it stores unreadable\n" % i
                for i in range(half // 64 + 1))[:half]
with open(sys.argv[1], "wb") as out:
    out.write(text + os.urandom(half))
PY
fi
echo "demo: encrypting $sample into ./demo-store with $se" >&2
"$se" encrypt "$sample" --store demo-store -o "$work/sample.sedm"
"$se" verify "$work/sample.sedm" --store demo-store
"$se" decrypt "$work/sample.sedm" --store demo-store -o "$work/restored.bin"
cmp "$sample" "$work/restored.bin"
echo "round trip: identical"
"$se" info "$work/sample.sedm" --deep --store demo-store
echo "data map, in $work/sample.sedm (keep it secret: it opens the file):"
cat "$work/sample.sedm"
echo "the command is .venv/bin/self-encryption (or: source .venv/bin/activate; self-encryption --help)"
