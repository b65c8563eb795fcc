#!/usr/bin/env bash
# Bandwidth-limited links for benchmarks: N network namespaces (edgc1..edgcN), each joined to a
# bridge by a veth pair whose namespace end is shaped with tbf. The kernel here has no netem, so
# only bandwidth is emulated, not latency. Needs root. Traffic stays on 10.77.0.0/24 inside this
# machine: the namespaces have no default route.
#
#   scripts/netsim.sh up N RATE      RATE: 1gbit, 100mbit, ... or none (unshaped)
#   scripts/netsim.sh down N
#   scripts/netsim.sh mpirun N PROGRAM ARGS...   one rank per namespace (MPMD), TCP only
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cmd=${1:-}
n=${2:-2}
bridge=edgcbr0
# N names the namespaces and addresses 10.77.0.1..N (the bridge has .254): checked before anything
# is created, so a bad command line leaves the machine as it was
bad_n() { echo "netsim.sh: N '$n': expected a whole number from 1 to 250" >&2; exit 2; }
case $n in '' | *[!0-9]* | 0*) bad_n ;; esac
[ "$n" -le 250 ] || bad_n

case "$cmd" in
up)
    rate=${3:-}
    if [ "$rate" != none ] && ! [[ $rate =~ ^[0-9]+(\.[0-9]+)?([kmgt]?bit|[kmgt]?bps)$ ]]; then
        echo "netsim.sh: RATE '$rate': expected none or a tc rate such as 100mbit or 1gbit" >&2
        exit 2
    fi
    "$0" down "$n" 2>/dev/null || true
    trap 'rc=$?; "$0" down "$n" 2>/dev/null; exit $rc' ERR # half a set-up is torn down again
    ip link add "$bridge" type bridge
    ip addr add 10.77.0.254/24 dev "$bridge"
    ip link set "$bridge" up
    for i in $(seq 1 "$n"); do
        ip netns add "edgc$i"
        ip link add "edgcv$i" type veth peer name "edgcv${i}b"
        ip link set "edgcv$i" netns "edgc$i"
        ip link set "edgcv${i}b" master "$bridge" up
        ip -n "edgc$i" addr add "10.77.0.$i/24" dev "edgcv$i"
        ip -n "edgc$i" link set "edgcv$i" up
        ip -n "edgc$i" link set lo up
        if [ "$rate" != none ]; then
            # burst above the 64 KiB of one TSO segment, queue bounded at 20 ms
            ip netns exec "edgc$i" tc qdisc replace dev "edgcv$i" root tbf rate "$rate" \
                burst 256kb latency 20ms
        fi
    done
    ;;
down)
    for i in $(seq 1 "$n"); do ip netns del "edgc$i" 2>/dev/null || true; done
    ip link del "$bridge" 2>/dev/null || true
    ;;
mpirun)
    shift 2
    # The ranks must reach mpirun's PMIx server from inside the namespaces (through the bridge's
    # address), and must use TCP: shared memory would bypass the shaped link.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export PMIX_MCA_ptl_tcp_remote_connections=1 PMIX_MCA_ptl_tcp_if_include=10.77.0.0/24
    apps=()
    for i in $(seq 1 "$n"); do
        [ "$i" -gt 1 ] && apps+=(":")
        apps+=(-np 1 ip netns exec "edgc$i" "$@")
    done
    mpirun --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
        -x OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" \
        -x GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}" "${apps[@]}"
    ;;
*)
    echo "usage: $0 up N RATE | down N | mpirun N PROGRAM ARGS..." >&2
    exit 2
    ;;
esac
