#!/usr/bin/env bash
# The engine's thin products through Debian's OpenBLAS and through Debian's BLIS, side by side
# (dev/blas/thin_products.c): builds the timer against each, runs them in turn for a number of
# rounds, and prints every round's table and then the medians. BLIS is not a dependency of the
# project: its package (libblis4-serial) is downloaded from the Debian archive and unpacked into
# a temporary directory, never installed.
#
# Usage (from the repository root): dev/blas/blas.sh [ROUNDS [RANK ...]]   (default 3; 4 8 16 32)
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
rounds=${1:-3}
shift || true
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(4 8 16 32)
case $rounds in '' | *[!0-9]*) echo "blas.sh: ROUNDS $rounds: expected a number" >&2; exit 2 ;; esac
src=$(cd "$(dirname "$0")" && pwd)/thin_products.c
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download libblis4-serial >/dev/null 2>&1) ||
    { echo "blas.sh: could not download libblis4-serial from the Debian archive" >&2; exit 1; }
dpkg -x "$tmp"/libblis4-serial_*.deb "$tmp/blis"
lib=$(find "$tmp/blis" -name 'libblis.so.*' | head -1)
[ -n "$lib" ] || { echo "blas.sh: no libblis.so in the package" >&2; exit 1; }
cc -O2 -std=c11 -Wall -Wextra -o "$tmp/openblas" "$src" -lopenblas -lm
cc -O2 -std=c11 -Wall -Wextra -o "$tmp/blis-serial" "$src" "$lib" -Wl,-rpath,"$(dirname "$lib")" -lm
export OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
echo "OpenBLAS: $(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || echo '?')," \
    "BLIS: $(basename "$tmp"/libblis4-serial_*.deb .deb | cut -d_ -f2); one thread each"
for ((r = 1; r <= rounds; r++)); do
    for b in openblas blis-serial; do
        echo "blas.sh: round $r of $rounds: $b" >&2
        echo
        echo "round $r, $b:"
        echo
        "$tmp/$b" --reps 3 "${ranks[@]}" | tee "$tmp/$b.$r"
    done
done
python3 - "$tmp" "$rounds" <<'EOF'
import statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def table(lib):
    rows = {}
    for r in range(1, rounds + 1):
        for line in open("%s/%s.%d" % (d, lib, r)):
            f = [x.strip() for x in line.strip().strip("|").split("|")]
            if f and f[0].isdigit():
                rows.setdefault(int(f[0]), []).append([float(x) for x in f[1:9]])
    return {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items()}
o, b = table("openblas"), table("blis-serial")
print("\nmedians over %d rounds, ms for all 48 matrices (engine = src/powersgd.c's layout):\n" % rounds)
print("| rank | OpenBLAS, engine layout | BLIS, engine layout | BLIS / OpenBLAS | OpenBLAS, faster of each | BLIS, faster of each | BLIS best / OpenBLAS engine |")
print("|---|---|---|---|---|---|---|")
for k in sorted(o):
    print("| %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |" % (
        k, o[k][6], b[k][6], b[k][6] / o[k][6], o[k][7], b[k][7], b[k][7] / o[k][6]))
print("\nper product, ms (OpenBLAS / BLIS):\n")
names = ["P engine", "P tall", "Q engine", "Q tall", "G engine", "G tall"]
print("| rank | " + " | ".join(names) + " |")
print("|---|" + "---|" * len(names))
for k in sorted(o):
    print("| %d | " % k + " | ".join("%.1f / %.1f" % (o[k][i], b[k][i]) for i in range(6)) + " |")
EOF
