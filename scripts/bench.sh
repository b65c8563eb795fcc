#!/usr/bin/env bash
# Runs the benchmarks and writes their figures, with the command that reproduces them, to
# docs/bench/<name>.md; then assembles docs/BENCHMARKS.md from those sections.
#   scripts/bench.sh [BUILD_DIR] [core|adamw|sync|train|converge|converge-long|converge4|repeat|seeds|pipeline|reliability|torch|blas ...]
#   (default: all of them)
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
all="core adamw sync train converge converge-long converge4 repeat seeds pipeline reliability torch blas"
build=${1:-build}
shift || true
which=${*:-$all}
# every name checked before anything runs: a typo must not cost the hour of the ones before it
for w in $which; do
    case " $all " in *" $w "*) ;; *)
        echo "bench: unknown benchmark '$w' (one of: $all)" >&2
        exit 2
        ;;
    esac
done
if [ ! -d "$build" ]; then
    case " $all " in *" $build "*) echo "bench: the first argument is the build directory (see --help)" >&2 ;; esac
    echo "bench: no build directory $build (build it with make build)" >&2
    exit 2
fi
mkdir -p docs/bench

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}

# The OpenBLAS kernels this machine gets: the CPU may name itself only "AMD EPYC", and the engine's
# speed (and which P = M Q it uses, docs/ALGORITHM.md 3) follows the kernels, not the name.
blas_core() {
    local core
    core=$(python3 -c 'import ctypes
l = ctypes.CDLL("libopenblas.so.0")
l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' 2>/dev/null) || core=unknown
    echo "$core${OPENBLAS_CORETYPE:+ (set by OPENBLAS_CORETYPE)}"
}

machine() {
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
        "$(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)," \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), OpenBLAS core $(blas_core)"
}

section() { # name, command...
    local name=$1
    shift
    local out="docs/bench/$name.md" tmp
    tmp=$(mktemp)
    echo "bench: $name: $*" >&2
    {
        echo "## $name"
        echo
        echo "Measured $(date -u +%Y-%m-%d) on $(machine)."
        if [ "$1" = sync_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build sync\` (root: it creates network namespaces)"
        elif [ "$1" = converge_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build converge\` (root: it creates network namespaces; about 32 min)"
        elif [ "$1" = converge_long_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build converge-long\` (root: it creates network namespaces; about 17 min)"
        elif [ "$1" = converge4_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build converge4\` (root: it creates network namespaces; about 35 min)"
        elif [ "$1" = repeat_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build repeat\` (root: it creates network namespaces; about 20 min)"
        elif [ "$1" = seeds_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build seeds\` (root: it creates network namespaces; about 30 min)"
        elif [ "$1" = pipeline_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build pipeline\` (root: it creates network namespaces; about 12 min)"
        elif [ "$1" = torch_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build torch\` (needs python3-torch; about 20 min)"
        elif [ "$1" = reliability_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build reliability\` (about 10 min; the fuzz part needs clang)"
        elif [ "$1" = blas_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build blas\` (downloads Debian's libblis4-serial into a temporary directory; about 1 min)"
        elif [ "$1" = train_table ]; then
            echo "Reproduce with: \`scripts/bench.sh $build train\`"
        else
            echo "Reproduce with: \`OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS GLIBC_TUNABLES=$GLIBC_TUNABLES $*\`"
        fi
        echo
        "$@"
    } >"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$out"
}

sync_table() { # the shared-memory and network runs of bench_sync, one table
    local mpi="mpirun -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    echo "Time per synchronisation step (barrier, reducer step, slowest rank) over the timed steps"
    echo "after untimed warm-up steps: the median, which the ratios use, and the mean, which also"
    echo "counts one-off costs (edgc's first dense step after its profile) and stalled transfers;"
    echo "bytes are what one rank put into allreduces per step."
    echo "edgc profiles r_max from step 0 (no warm-up) and is timed over its first compressed steps."
    echo "edgc's r_max comes from its default budget rule (docs/ALGORITHM.md, 4.2) with nothing"
    echo "computed between the syncs: the largest timed rank whose sync stays within a fifth of the"
    echo "best saving of the fastest one, 0 (stay dense) when no rank saves 5 % of a dense sync."
    echo "Network rows: one rank per network namespace, TCP through a veth shaped with tbf"
    echo "(\`scripts/netsim.sh\`); shm rows: Open MPI shared memory on 2 cores."
    echo
    echo "| link | layout | floats | mode | ms/step (median) | ms/step (mean) | MB sent/step | time vs dense | bytes vs dense |"
    echo "|---|---|---|---|---|---|---|---|---|"
    local b="$build/bench/bench_sync"
    for np in 2 4; do
        $mpi -np $np "$b" --layout tiny --label "shm np=$np"
        $mpi -np $np "$b" --layout gpt2 --label "shm np=$np" --steps 5
    done
    for np in 2 4; do
        scripts/netsim.sh up $np 1gbit
        scripts/netsim.sh mpirun $np "$b" --layout tiny --label "1 Gbit/s np=$np"
        scripts/netsim.sh mpirun $np "$b" --layout gpt2 --label "1 Gbit/s np=$np" --steps 3 --warmup 1
        scripts/netsim.sh down $np
    done
    scripts/netsim.sh up 2 100mbit
    scripts/netsim.sh mpirun 2 "$b" --layout tiny --label "100 Mbit/s np=2"
    scripts/netsim.sh mpirun 2 "$b" --layout gpt2 --label "100 Mbit/s np=2" --steps 1 --warmup 1 \
        --modes dense,powersgd:8,edgc
    scripts/netsim.sh down 2
}

train_table() { # throughput and convergence of edgc-train
    local mpi="mpirun -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES"
    local t="$build/apps/edgc-train/edgc-train"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    [ -f data/kjv.txt ] || make --no-print-directory data/kjv.txt >&2
    local sum
    echo "### Training throughput (dense sync, Open MPI shared memory)"
    echo
    echo "GFLOP/s counts the model's matmul and attention flops (6 per parameter-token plus"
    echo "attention); \"of peak\" is that over the rate a 1024-square sgemm reaches on the same ranks"
    echo "and threads at the end of the run; the shares are of the time inside the training loop."
    echo
    echo "| model | ranks | batch x seq per rank | steps | tokens/s | GFLOP/s | of peak | forward | backward | sync | optimizer |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    run_tp() { # label np steps args...
        local label=$1 np=$2 steps=$3
        shift 3
        sum=$($mpi ${MPIOPT:-} -np "$np" "$t" --data "${DATA:-data/kjv.txt}" "$@" --steps "$steps" \
            --compress dense --eval-every 0 --eval-batches 1 --sample-len 0 --hash-every 0 |
            grep '^summary:')
        echo "$sum" | awk -v l="$label" -v np="$np" -v bt="$BT" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "| %s | %s | %s | %s | %.0f | %.2f | %.0f %% | %.0f %% | %.0f %% | %.0f %% | %.0f %% |\n",
                l, np, bt, v["steps"], v["tok_s"], v["gflops"], v["peak_pct"], v["fwd_pct"], v["bwd_pct"],
                v["sync_pct"], v["opt_pct"] }'
    }
    for np in 1 2; do
        BT="8 x 64" run_tp "tiny (L4 C128 NH4)" $np 60 --preset tiny
        BT="2 x 256" run_tp "124m layout (L12 C768 NH12), T=256" $np 4 --preset 124m --seq 256 --batch 2 --warmup 1
    done
    # GPT-2 124M itself (vocabulary 50257): the KJV's bytes as GPT-2 token ids in an llm.c shard
    # give the model its real shape without a tokenizer; 2 cores as 2 ranks or 1 rank x 2 threads
    # (with OMP_WAIT_POLICY=passive, as the README asks for more than one thread per rank)
    local shard
    shard=$(mktemp --suffix=.bin)
    python3 -c 'import struct, sys
d = open("data/kjv.txt", "rb").read()
h = [20240520, 1, len(d)] + [0] * 253
sys.stdout.buffer.write(struct.pack("<256i", *h) + struct.pack("<%dH" % len(d), *d))' >"$shard"
    BT="4 x 64" DATA=$shard run_tp "GPT-2 124M (V 50257), 1 thread per rank" 2 6 --preset 124m --seq 64 --batch 4 --warmup 1 --threads 1
    BT="4 x 64" DATA=$shard MPIOPT="--bind-to none -x OMP_WAIT_POLICY=passive" run_tp "GPT-2 124M (V 50257), 2 threads" 1 6 --preset 124m --seq 64 --batch 4 --warmup 1 --threads 2
    rm -f "$shard"
    echo
    echo "### Convergence on the King James Bible (tiny, 2 ranks, 600 steps, same seed)"
    echo
    echo "edgc runs with a hand-set \`--rmax 16 --window 50\` to show compression at work: on shared memory no rank"
    echo "beats dense sync, so its defaults keep it dense (see the converge section for the defaults)."
    echo "Plots: \`docs/plots/{loss,val_loss,rank,entropy}.png\`, from the logs in \`docs/plots/\`."
    echo
    echo "| mode | final val loss | vs dense | MB sent per rank | vs dense bytes | wall s |"
    echo "|---|---|---|---|---|---|"
    mkdir -p docs/plots
    local dense_loss="" dense_mb=""
    for mode in dense powersgd:4 powersgd:16 edgc; do
        local extra=() name=${mode/:/}
        [ "$mode" = edgc ] && extra=(--rmax 16 --window 50)
        local t0=$SECONDS
        sum=$($mpi -np 2 "$t" --preset tiny --steps 600 --compress "$mode" "${extra[@]}" \
            --data data/kjv.txt --sample-len 0 --log "docs/plots/$name.jsonl" | grep '^summary:')
        local wall=$((SECONDS - t0))
        local loss mb
        loss=$(echo "$sum" | grep -o 'val_loss=[^ ]*' | cut -d= -f2)
        mb=$(echo "$sum" | grep -o 'sent_mb=[^ ]*' | cut -d= -f2)
        [ "$mode" = dense ] && { dense_loss=$loss; dense_mb=$mb; }
        awk -v m="$mode" -v l="$loss" -v dl="$dense_loss" -v b="$mb" -v db="$dense_mb" -v w="$wall" \
            'BEGIN { printf "| %s | %.4f | %+.2f %% | %.1f | %.3f | %d |\n", m, l, 100 * (l - dl) / dl, b, b / db, w }'
    done
    scripts/plot.sh -o docs/plots docs/plots/dense.jsonl docs/plots/powersgd4.jsonl \
        docs/plots/powersgd16.jsonl docs/plots/edgc.jsonl >&2
}

converge_setup() {
    t=$PWD/$build/apps/edgc-train/edgc-train
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    [ -f data/kjv.txt ] || make --no-print-directory data/kjv.txt >&2
    dir=docs/plots/converge
    mkdir -p "$dir"
}

# converge_run log link np preset steps batch mode: one training run logged to log; a mode is a
# --compress value plus flags, '+' for spaces ("edgc+--rule+trend")
converge_run() {
    local log=$1 link=$2 np=$3 preset=$4 steps=$5 batch=$6 mode=$7
    local args=(${mode//+/ })
    rm -f "$log"
    local cmd=("$t" --preset "$preset" --steps "$steps" --batch "$batch" --compress "${args[@]}"
        --data "$PWD/data/kjv.txt" --eval-every 25 --eval-batches 8 --sample-len 0
        --hash-every 0 --print-every 100 --log "$PWD/$log")
    if [ "$link" = shm ]; then
        mpirun -x OPENBLAS_NUM_THREADS -x GLIBC_TUNABLES -np "$np" "${cmd[@]}" >&2
    else
        scripts/netsim.sh mpirun "$np" "${cmd[@]}" >&2
    fi
}

# converge_label mode: the mode as the tables name it ("edgc rule trend")
converge_label() {
    local label=${1//+--/ }
    echo "${label//+/ }"
}

# group name link np preset steps batch modes...: one side-by-side table (modes: converge_run)
group() {
    local name=$1 link=$2 np=$3 preset=$4 steps=$5 batch=$6
    shift 6
    local specs=()
    [ "$link" = shm ] || scripts/netsim.sh up "$np" "$link"
    for mode in "$@"; do
        local label
        label=$(converge_label "$mode")
        local log="$dir/$name-$(echo "$label" | tr ' :' '_-').jsonl"
        echo "bench: converge $name: $label" >&2
        converge_run "$log" "$link" "$np" "$preset" "$steps" "$batch" "$mode"
        specs+=("$label=$log")
    done
    [ "$link" = shm ] || scripts/netsim.sh down "$np"
    echo "### $name: $preset, $np ranks, $link, $steps steps of batch $batch x seq"
    echo
    python3 scripts/converge_table.py --plots docs/plots --name "$name" "${specs[@]}"
    echo
    echo "Plots: \`docs/plots/$name-time.png\`, \`docs/plots/$name-bytes.png\`; logs in \`$dir/\`."
    echo
}

converge_about() {
    echo "Every run trains from the same seed on the same data; validation loss every 25 steps"
    echo "(8 batches, evaluation time excluded from the times). The target is dense's final"
    echo "validation loss + 1 %; \"time to target\" is the training time at the first evaluation"
    echo "that reaches it. Network links: one rank per namespace, TCP through tbf (\`scripts/netsim.sh\`)."
    echo "edgc rows without flags use every default (r_max profiled by the budget rule, window from"
    echo "--steps, warm-up of 20 % of the run at r_max, decay rule); the others change one setting each."
    echo
}

converge_table() { # time to dense's quality on emulated links: docs/BENCHMARKS.md, converge
    converge_setup
    converge_about
    local modes100=(dense powersgd:2 powersgd:4 powersgd:8 powersgd:16 powersgd:32 edgc
        edgc+--rule+trend edgc+--rule+error edgc+--rule+cqm edgc+--rmax-rule+paper
        edgc+--warmup-sync+dense edgc+--edgc-warmup+0.1)
    group tiny-100mbit-np2 100mbit 2 tiny 600 8 "${modes100[@]}"
    group tiny-shm-np2 shm 2 tiny 600 8 dense powersgd:8 edgc edgc+--rule+trend
    group mini-1gbit-np2 1gbit 2 mini 300 4 dense powersgd:2 powersgd:4 powersgd:8 powersgd:16 \
        powersgd:32 edgc edgc+--rule+trend edgc+--rule+error edgc+--edgc-warmup+0.1
}

converge_long_table() { # mini over 600 steps, where rank 32 falls short of dense's quality
    converge_setup
    converge_about
    echo "The converge section runs mini for 300 steps; over 600 it needs far more rank to reach"
    echo "dense's loss (docs/ALGORITHM.md 4.2), so this group tracks that regime."
    echo
    group mini-1gbit-np2-600 1gbit 2 mini 600 4 dense powersgd:16 powersgd:32 powersgd:48 edgc
}

converge4_table() { # the same at 4 ranks (oversubscribed: 2 cores), its own dense baseline
    converge_setup
    converge_about
    echo "4 ranks share the 2 cores here, so compute takes about twice as long per step as at 2"
    echo "ranks and the sync share is lower than on 4 real machines."
    echo
    group mini-1gbit-np4 1gbit 4 mini 300 4 dense powersgd:2 powersgd:4 powersgd:8 powersgd:16 \
        powersgd:32 edgc edgc+--rule+trend
}

repeat_table() { # issue 7's closest target, run again and again: mini, 2 ranks, 1 Gbit/s
    converge_setup
    local rounds=${REPEAT_ROUNDS:-3} modes=(powersgd:4 powersgd:8 edgc edgc+--edgc-warmup+0.1)
    local specs=() r mode
    local name=repeat-mini-1gbit-np2
    declare -A logs
    echo "The converge section's mini, 2 ranks, 1 Gbit/s group (300 steps of batch 4), with the"
    echo "fastest static ranks there, EDGC with every default, and EDGC with a 10 % warm-up (the"
    echo "one setting whose change moved this group most in the converge runs) run $rounds times, taking turns"
    echo "(dense once: its loss does not change from run to run). One run's time to target moves"
    echo "by about +-10 % here, mostly in compute, which no mode controls; the ratio to powersgd:4"
    echo "is taken within each round, and the sync and compute columns split the median run's time."
    echo
    scripts/netsim.sh up 2 1gbit
    echo "bench: repeat: dense" >&2
    converge_run "$dir/$name-dense.jsonl" 1gbit 2 mini 300 4 dense
    for ((r = 1; r <= rounds; r++)); do
        for mode in "${modes[@]}"; do
            local log
            log="$dir/$name-$(converge_label "$mode" | tr ' :' '_-').r$r.jsonl"
            echo "bench: repeat: $mode, round $r of $rounds" >&2
            converge_run "$log" 1gbit 2 mini 300 4 "$mode"
            logs[$mode]+="${logs[$mode]:+,}$log"
        done
    done
    scripts/netsim.sh down 2
    for mode in "${modes[@]}"; do specs+=("$(converge_label "$mode")=${logs[$mode]}"); done
    python3 scripts/repeat_table.py --ref powersgd:4 "dense=$dir/$name-dense.jsonl" "${specs[@]}"
    echo
    echo "Logs in \`$dir/$name-*\`."
}

seeds_table() { # the 100 Mbit/s tiny group at other initialisations: which target misses are noise
    converge_setup
    local seeds=(${SEEDS:-1337 2 3}) seed
    converge_about
    echo "Here the seed varies (\`--seed\`: the weights' initialisation; the batches stay the same):"
    echo "the converge section's 100 Mbit/s tiny group, with dense (each seed sets its own target),"
    echo "the two static ranks that come nearest its loss, and EDGC with every default. 1337 is the"
    echo "trainer's default seed, the one the converge section runs."
    echo
    for seed in "${seeds[@]}"; do
        group "tiny-100mbit-np2-seed$seed" 100mbit 2 tiny 600 8 "dense+--seed+$seed" \
            "powersgd:16+--seed+$seed" "powersgd:32+--seed+$seed" "edgc+--seed+$seed"
    done
}

pipeline_table() { # DP x PP with WAM on emulated links
    converge_setup
    local np=4 rate=100mbit steps=${PIPELINE_STEPS:-300} repeats=${PIPELINE_REPEATS:-3} specs=()
    local modes=(dense powersgd:8 edgc "edgc --wam on" "edgc --wam paper")
    declare -A logs
    echo "PP=2 x DP=2, \`tiny\` preset, batch 8 per replica in 4 micro-batches (1F1B), $steps steps;"
    echo "one rank per namespace at $rate (\`scripts/netsim.sh\`): activations between the stages"
    echo "and each stage's gradient sync share the shaped links. At this speed a dense sync of one"
    echo "stage (1.75 MB) takes longer than the whole pipelined forward and backward, which is the"
    echo "regime pipelines with compression are built for. 4 ranks share the 2 cores here, so"
    echo "compute is slower and noisier than on 4 machines (one thread per rank). Steady state: the second half of each"
    echo "run; per stage its rank (median, range), reducer sync time, backward time per micro-batch"
    echo "(t_mb) and time blocked in pipeline receives, all means per step. Every compressed setting"
    echo "ran $repeats times, the settings taking turns, since one run's iteration time moves by"
    echo "+-15 % here; the table gives the median run and the range (dense ran once)."
    echo
    scripts/netsim.sh up "$np" "$rate"
    rm -f "$dir"/pipeline-*
    for ((r = 1; r <= repeats; r++)); do
        for mode in "${modes[@]}"; do
            [ "$mode" = dense ] && [ "$r" -gt 1 ] && continue
            local log="$dir/pipeline-${mode// /_}.r$r.jsonl"
            log=${log//:/-}
            echo "bench: pipeline: $mode, run $r of $repeats" >&2
            scripts/netsim.sh mpirun "$np" "$t" --preset tiny --pp 2 --micro-batches 4 --batch 8 \
                --steps "$steps" --compress $mode --data "$PWD/data/kjv.txt" --eval-every 50 \
                --sample-len 0 --hash-every 50 --print-every 100 --threads 1 --log "$PWD/$log" >&2
            logs[$mode]+="${logs[$mode]:+,}$log"
        done
    done
    for mode in "${modes[@]}"; do specs+=("$mode=${logs[$mode]}"); done
    scripts/netsim.sh down "$np"
    python3 scripts/pipeline_table.py "${specs[@]}"
    echo
    echo "\"edgc\" (the default, \`--wam off\`): every stage takes stage 0's rank; \"edgc --wam on\":"
    echo "stage 1 spends its slack (stage 0's expected sync time plus one t_mb) on the largest rank"
    echo "its own profile says fits, at most its r_max, both profiles scaled by the ratio of measured"
    echo "to predicted sync time in their last window; \"edgc --wam paper\": the authors' rule, dense"
    echo "when that rank exceeds r_max. Here 4 ranks share 2 cores and the links' packets cost CPU"
    echo "time, so a stage waiting in its bubble does not leave that time idle: spending the slack"
    echo "on more bytes slows the other stage (its wait grows), which is why the default is off."
    echo "Logs in \`$dir/pipeline-*\`."
}

torch_table() { # the PyTorch hook against torch's powerSGD_hook
    echo "### The hook in training"
    echo
    EDGC_LIBRARY=$PWD/$build/libedgc.so OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_torch_hook.py --tables timing
    echo
    echo "### Loss against bytes: torch's static ranks and EDGC's decaying rank"
    echo
    EDGC_LIBRARY=$PWD/$build/libedgc.so OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_torch_hook.py --tables quality
    echo
    echo "### The engine on the GPT-2-small layout (\`bench/bench_engine_torch.py\`)"
    echo
    echo "One thread per worker, error feedback off, warm start, the same DDP buckets through"
    echo "both hooks; relative error of the synchronised gradient after the same steps. First one"
    echo "worker (the collectives cost nothing: the engines' arithmetic alone), then two over gloo"
    echo "(what the collectives cost too)."
    echo
    EDGC_LIBRARY=$PWD/$build/libedgc.so OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_engine_torch.py
    echo
    EDGC_LIBRARY=$PWD/$build/libedgc.so OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_engine_torch.py --procs 2
}

reliability_table() { # crash safety, fuzzing, bad input, a long run's memory
    local t=$PWD/$build/apps/edgc-train/edgc-train
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    [ -f data/kjv.txt ] || make --no-print-directory data/kjv.txt >&2
    local tries=${RELIABILITY_TRIES:-30} secs=${FUZZ_SECONDS:-60} steps=${SOAK_STEPS:-20000} out
    echo "### Kill and resume"
    echo
    echo "\`TRIES=$tries tests/test_crash_resume.sh\`: a 2-rank EDGC run checkpointing every 4 steps is"
    echo "killed with SIGKILL (the whole job) at a random moment, then resumed to the end; the final"
    echo "model must equal an uninterrupted run's byte for byte."
    echo
    out=$(TRIES=$tries bash tests/test_crash_resume.sh "$t" 2>&1 || true)
    echo '```'
    echo "$out" | tail -n 4
    echo '```'
    echo
    echo "### Fuzzing"
    echo
    if command -v clang >/dev/null 2>&1; then
        echo "\`make fuzz FUZZ_SECONDS=$secs\` (libFuzzer + ASan + UBSan, the three harnesses side by side for"
        echo "$secs s, from the seed corpus in \`tests/fuzz/corpus/\`):"
        echo
        echo '```'
        make --no-print-directory fuzz FUZZ_SECONDS="$secs" 2>&1 | grep '^fuzz ' || true
        echo '```'
    else
        echo "clang is not installed: not measured (\`make fuzz\` installs it)."
    fi
    echo
    echo "### Bad input"
    echo
    out=$(bash tests/test_cli.sh "$t" 2>&1 || true)
    echo "\`tests/test_cli.sh\`: $(echo "$out" | tail -n 1) (malformed flags, files, checkpoints, and"
    echo "ranks started with different options or data; each must end every rank with one line"
    echo "naming the problem, within the test's timeout)."
    echo
    echo "### Soak"
    echo
    echo "\`scripts/soak.sh $build $steps\`: 2 ranks, tiny preset, batch 2, EDGC with r_max 16,"
    echo "a checkpoint every 1000 steps; resident memory of each rank sampled every 10 s:"
    echo
    echo '```'
    bash scripts/soak.sh "$build" "$steps" out/soak 2>&1 | tail -n 4
    echo '```'
}

blas_table() { # the engine's thin products through OpenBLAS and BLIS (dev/blas)
    echo "The PowerSGD engine's three products (P = M Q, Q = M^T P, G = P Q^T) on the GPT-2-small"
    echo "layout (85 M floats in 48 matrices), one thread, timed through Debian's OpenBLAS and"
    echo "through Debian's BLIS (\`dev/blas/thin_products.c\`, built against each by"
    echo "\`dev/blas/blas.sh\`; BLIS is unpacked from its package, not installed, and the library does"
    echo "not use it). Two layouts of the small factors: the engine's (Pt, r x rows, and Qt, r x cols,"
    echo "row-major) and tall ones (P, rows x r, and Q, cols x r); the factors are 0.1 % of M, so"
    echo "transposing them between products costs nothing next to one read of M. Each figure is one"
    echo "product over all 48 matrices (M from memory), the median of 3; the rounds alternate the"
    echo "two libraries."
    echo
    local out
    out=$(dev/blas/blas.sh 5)
    echo "$out" | sed -n '1p'
    echo "$out" | sed -n '/^medians/,$p'
}

for w in $which; do
    case "$w" in
    core) section core "$build/bench/bench_core" ;;
    adamw) section adamw "$build/bench/bench_adamw" ;;
    sync) section sync sync_table ;;
    train) section train train_table ;;
    converge) section converge converge_table ;;
    converge-long) section converge-long converge_long_table ;;
    converge4) section converge4 converge4_table ;;
    repeat) section repeat repeat_table ;;
    seeds) section seeds seeds_table ;;
    pipeline) section pipeline pipeline_table ;;
    torch) section torch torch_table ;;
    blas) section blas blas_table ;;
    reliability) section reliability reliability_table ;;
    *) echo "bench: unknown benchmark '$w'" >&2; exit 2 ;;
    esac
done

{
    echo "# Benchmarks"
    echo
    echo "Figures in each section were measured side by side in one run of the command shown;"
    echo "this machine is shared and noisy (about +-30 % between runs), so compare within a"
    echo "section, not across sections or runs. Regenerate with \`make bench\`."
    echo
    for f in docs/bench/*.md; do
        cat "$f"
        echo
    done
} >docs/BENCHMARKS.md
echo "bench: wrote docs/BENCHMARKS.md" >&2
