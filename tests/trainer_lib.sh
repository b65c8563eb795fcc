# Sourced by the trainer's shell tests: a scratch directory removed at exit, Open MPI as root,
# one BLAS thread, and the helpers they share.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# After a rank exits non-zero, mpirun waits this many seconds between the signals it sends the
# job's other processes (default 1; it cost 2 s of idle per refused command line, most of the
# CLI tests' time). Ours exit by themselves; a straggler is still killed, only sooner.
export OMPI_MCA_odls_base_sigkill_timeout=0
export OPENBLAS_NUM_THREADS=1
fail() { echo "FAIL: $*" >&2; exit 1; }
# field FILE.jsonl NAME: the values of NAME in a --log file, one per step
field() { grep -o "\"$2\":[^,}]*" "$1" | cut -d: -f2; }
# make_corpus LINES FILE: repeated sentences with variations, a structure a small model can learn
make_corpus() {
    for i in $(seq 1 "$1"); do echo "line $((i % 17)) of the test corpus says $((i * 7 % 13)) things."; done >"$2"
}
