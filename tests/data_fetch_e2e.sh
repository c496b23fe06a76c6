#!/usr/bin/env bash
# End to end: `htga data fetch mnist` from a local HTTP server (a mirror), then a 1-epoch grid on
# what it fetched. usage: tests/data_fetch_e2e.sh path/to/htga
#
# The server holds a tiny fake MNIST in the real layout (four gzipped IDX files), made here: its
# bytes are not the published ones, so their checksums are given to htga through
# HTGA_DATA_CHECKSUMS_OVERRIDE (sha256sum's format). htga honours that file only together with a
# mirror, prints a warning when it does, and records it: `htga data verify` afterwards still
# checks the published checksums and must fail on these files, which this script checks too.
set -euo pipefail

htga=$(realpath "$1")
command -v python3 >/dev/null || { echo "data_fetch_e2e: python3 not found; skipped"; exit 77; }

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "data_fetch_e2e: FAILED: $*" >&2; exit 1; }

mkdir -p "$tmp/served" "$tmp/data"
python3 - "$tmp/served" <<'PY'
import gzip, os, random, struct, sys
out = sys.argv[1]
rng = random.Random(0)
def write(name, magic, dims, data):
    with gzip.open(os.path.join(out, name), "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data))
for split, n in (("train", 512), ("t10k", 128)):
    labels = [rng.randrange(10) for _ in range(n)]
    # Each class a bright band at its own rows, so that one epoch learns something.
    pixels = []
    for y in labels:
        img = [rng.randrange(40) for _ in range(28 * 28)]
        for r in range(2 * y + 4, 2 * y + 7):
            for c in range(28): img[r * 28 + c] = 255
        pixels += img
    write(split + "-images-idx3-ubyte.gz", 0x803, (n, 28, 28), pixels)
    write(split + "-labels-idx1-ubyte.gz", 0x801, (n,), labels)
PY
(cd "$tmp/served" && sha256sum *.gz) > "$tmp/checksums"

python3 - "$tmp/served" "$tmp/port" <<'PY' &
import functools, http.server, os, sys
root, port_file = sys.argv[1:3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
handler.func.log_message = lambda *a: None
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
open(port_file + ".tmp", "w").write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
PY
server_pid=$!
for _ in $(seq 100); do [ -f "$tmp/port" ] && break; sleep 0.1; done
[ -f "$tmp/port" ] || fail "the HTTP server did not start"
mirror="http://127.0.0.1:$(cat "$tmp/port")"

# A 404 (the mirror lacks the files): exit 1, a message naming the URL, data/ untouched.
set +e
HTGA_DATA_CHECKSUMS_OVERRIDE="$tmp/checksums" "$htga" data fetch mnist --root "$tmp/data" --mirror "$mirror/nothing" \
  > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "fetch from a mirror without the files: exit $rc, want 1"
grep -q "HTTP 404" "$tmp/err" || fail "no HTTP 404 in: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/data")" ] || fail "data/ not left as it was: $(ls -A "$tmp/data")"

# The fetch itself, with the mirror from the environment.
HTGA_DATA_MIRROR="$mirror" HTGA_DATA_CHECKSUMS_OVERRIDE="$tmp/checksums" \
  "$htga" data fetch mnist --root "$tmp/data" > "$tmp/out" 2> "$tmp/err" || fail "fetch: $(cat "$tmp/err")"
grep -q "WARNING" "$tmp/err" || fail "the checksum override was not announced"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  cmp -s "$tmp/served/$f" "$tmp/data/mnist/$f" || fail "$f not fetched as served"
done
"$htga" data list --root "$tmp/data" | grep -E "^mnist +complete" > /dev/null || fail "data list does not show mnist complete"
if "$htga" data verify mnist --root "$tmp/data" > "$tmp/verify"; then
  fail "data verify passed fake files against the published checksums"
fi
grep -q "does not match the published" "$tmp/verify" || fail "verify: $(cat "$tmp/verify")"

# A grid on the fetched data.
cat > "$tmp/grid.json" <<JSON
{
  "name": "fetched-mnist",
  "defaults": {"epochs": 1, "batch_size": 64, "device": "cpu"},
  "datasets": [{"name": "mnist", "path": "$tmp/data/mnist", "val_size": 64}],
  "models": [{"name": "mlp", "hidden": [32]}],
  "optimizers": [{"name": "sgd-clip", "lr": 0.1, "clip_norm": 1.0}],
  "seeds": [0]
}
JSON
(cd "$tmp" && "$htga" run grid grid.json --db "$tmp/htga.db" -q) || fail "the grid on the fetched data failed"
"$htga" runs --db "$tmp/htga.db" > "$tmp/runs" || fail "htga runs failed"
grep -q finished "$tmp/runs" || fail "no finished run: $(cat "$tmp/runs")"
echo "data_fetch_e2e: ok"
