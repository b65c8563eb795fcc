#!/usr/bin/env bash
# Installs the library into a scratch prefix, then builds and runs the example against it two
# ways: pkg-config (shared and static) and CMake find_package.
set -euo pipefail
build=$1 src=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cmake --install "$build" --prefix "$stage/prefix" >/dev/null
libdir=$(ls -d "$stage"/prefix/lib*)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
example="$src/examples/example_powersgd.c"

cc -std=c11 -Wall -Werror "$example" -o "$stage/pc_shared" $(pkg-config --cflags --libs edgc) -lpthread
LD_LIBRARY_PATH="$libdir" "$stage/pc_shared" | grep -q 'identical: yes'
echo "pkg-config shared: ok"

cc -std=c11 -Wall -Werror "$example" -o "$stage/pc_static" $(pkg-config --cflags edgc) \
    "$libdir/libedgc.a" $(pkg-config --libs --static edgc | sed 's/-ledgc//') -lpthread
"$stage/pc_static" | grep -q 'identical: yes'
echo "pkg-config static: ok"

cmake -S "$src/tests/install_consumer" -B "$stage/consumer" -DCMAKE_PREFIX_PATH="$stage/prefix" \
    -DEXAMPLE_SOURCE="$example" >/dev/null
cmake --build "$stage/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$stage/consumer/consumer" | grep -q 'identical: yes'
echo "find_package: ok"

# The Python package finds the library it was installed with (no EDGC_LIBRARY, no build tree).
pydir=$(ls -d "$stage"/prefix/lib/python3*/dist-packages)
(cd "$stage" && env -u EDGC_LIBRARY PYTHONPATH="$pydir" /usr/bin/python3 -c \
    'import edgc, edgc._lib as l; assert l.lib._name.startswith("'"$stage"'"), l.lib._name; print(edgc.__version__)') |
    grep -q '^[0-9]'
echo "python package: ok"

# Only edgc_* symbols are exported from the shared library.
extra=$(nm -D --defined-only "$libdir/libedgc.so" | awk '{print $3}' | grep -v '^edgc_' |
    grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' || true)
if [ -n "$extra" ]; then
    echo "exported symbols outside the edgc_ prefix: $extra" >&2
    exit 1
fi
echo "exports: ok"
