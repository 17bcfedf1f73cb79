#!/bin/sh
# gpu_check.sh - everything to run on a machine with an NVIDIA GPU (H100/H200),
# nvcc and PyTorch, offline, in about 6 minutes (each step has a timeout; the sanitizer gets what is left of 330 s):
#   1. make cuda                        dl_cuda.cu (sm_90 + PTX) and build/test_cuda
#   2. build/test_cuda --require-gpu    every op, loss and optimizer against the CPU
#   2b. the same (--quick) with DL_CUDA_GRAPHS=1 DL_CUDA_CONV=auto: graphs and the implicit GEMMs
#   3. build/test_cuda --bench          reference CNN, cifar and residual nets, images/s at batch
#                                       64, 256, 1024; DL_CUDA_CONV=im2col/implicit x DL_CUDA_GRAPHS=0/1
#   3b. build/test_cuda --bench-conv    conv chains, DL_CUDA_CONV=im2col vs implicit
#   4. build/fashion_gpu --gpu --epochs 1 --data DIR       (the demo on the GPU)
#   5. python3 bench/torch_fashion.py --device cuda         (skipped if absent)
#   5b. python3 bench/torch_ref.py --device cuda: PyTorch + cuDNN on step 3's nets and batches
#   5c. examples/dist NCCL adapter: 1 GPU via ncclAllReduce = the plain GPU run
#   5d. synchronised batchnorm through ncclSum on 1 GPU: within 1e-4 of the plain GPU run
#   6. compute-sanitizer memcheck, then racecheck, on build/test_cuda --quick
#      (skipped if absent or out of time)
# DIR is the first argument, default .gpu/fashion-mnist (the four .gz files).
# Seven files go to $OUT when it is set, else to build/gpu_check: summary.txt,
# build.log, test_cuda.log (tests and bench), fashion.log, torch.log,
# sanitizer.log, nccl.log. Exit status 0 when every step that ran passed.
set -u
cd "$(dirname "$0")/.." || exit 1
LOG=${OUT:-build/gpu_check}
DATA=${1:-.gpu/fashion-mnist}
mkdir -p "$LOG" build
SUM=$LOG/summary.txt
: > "$SUM"
status=0
START=$(date +%s)
secs() { echo $(( $(date +%s) - START )); }
row() { printf '%-30s %-8s %s\n' "$1" "$2" "$3" >> "$SUM"; }
step() { printf '\n== %s (at %ss)\n' "$1" "$(secs)"; }
export PYTHONUNBUFFERED=1

step "machine"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
nv=$(nvcc --version 2>/dev/null | grep release)
echo "GPU: ${gpu:-none found}"; echo "nvcc: ${nv:-not on PATH}"; cc --version | head -1
req=""
[ -n "$gpu" ] && req=--require-gpu              # a GPU is there: not using it is a failure
row "machine" "-" "GPU: ${gpu:-none}; nvcc: ${nv:-none}"

step "1. make cuda"
# -Werror off: a newer compiler's new warning must not cost the GPU run
if timeout 240 make cuda WARN='-Wall -Wextra -pedantic' > "$LOG/build.log" 2>&1; then
    row "1 build (make cuda)" "PASS" "$(grep -c warning "$LOG/build.log") warnings, $(secs)s"
else
    tail -30 "$LOG/build.log"
    row "1 build (make cuda)" "FAIL" "see build.log"
    status=1
fi
tail -3 "$LOG/build.log"

if [ -x build/test_cuda ]; then
    step "2. build/test_cuda $req"
    timeout 180 build/test_cuda $req > "$LOG/test_cuda.log" 2>&1
    rc=$?
    grep -E '^(FAIL|    FAIL|GPU tests)' "$LOG/test_cuda.log" | head -40
    last=$(tail -1 "$LOG/test_cuda.log")
    ran=$(grep '^GPU tests:' "$LOG/test_cuda.log" | tail -1)
    if [ $rc -eq 0 ]; then row "2 GPU vs CPU parity" "PASS" "$last; $ran"
    else row "2 GPU vs CPU parity" "FAIL" "exit $rc: $last; $ran"; status=1; fi

    step "2b. build/test_cuda --quick with DL_CUDA_GRAPHS=1 DL_CUDA_CONV=auto: every case through graphs"
    DL_CUDA_GRAPHS=1 DL_CUDA_CONV=auto timeout 120 build/test_cuda --quick > "$LOG/test_graphs.log" 2>&1
    rc=$?
    grep -E '^(FAIL|    FAIL)' "$LOG/test_graphs.log" | head -20
    cat "$LOG/test_graphs.log" >> "$LOG/test_cuda.log"
    if [ $rc -eq 0 ]; then row "2b parity, graphs + auto conv" "PASS" "$(tail -1 "$LOG/test_graphs.log")"
    else row "2b parity, graphs + auto conv" "FAIL" "exit $rc: $(tail -1 "$LOG/test_graphs.log")"; status=1; fi
    rm -f "$LOG/test_graphs.log"

    step "3. build/test_cuda --bench: reference CNN, cifar and residual nets at batch 64, 256, 1024"
    # Each convolution path (DL_CUDA_CONV) with CUDA graphs off and on (DL_CUDA_GRAPHS): 4 runs of
    # 9 net/batch pairs, about 1 s each (0.4 s of training, 0.4 s of inference, warm-up).
    echo "== build/test_cuda --bench, per path" >> "$LOG/test_cuda.log"
    : > "$LOG/bench.tmp"
    for p in im2col implicit; do
        for gr in 0 1; do
            DL_CUDA_CONV=$p DL_CUDA_GRAPHS=$gr DL_BENCH_GPU_ONLY=1 timeout 50 build/test_cuda --bench 2>&1 |
                grep '^bench' | sed "s/^bench: /bench ($p, graphs $gr): /" >> "$LOG/bench.tmp"
        done
    done
    cat "$LOG/bench.tmp" >> "$LOG/test_cuda.log"
    cat "$LOG/bench.tmp"
    grep '^bench (im2col, graphs 0): .*GPU' "$LOG/bench.tmp" | while IFS= read -r l; do
        row "3 bench (random data)" "-" "$(echo "$l" | sed 's/^bench ([^)]*): //; s/ (\([^)]*\) ms\/step)//')"
    done
    rm -f "$LOG/bench.tmp"

    step "3b. convolution paths: conv chains, im2col + cuBLAS against the implicit GEMM (DL_CUDA_CONV)"
    echo "== build/test_cuda --bench-conv" >> "$LOG/test_cuda.log"
    timeout 60 build/test_cuda --bench-conv > "$LOG/bench.tmp" 2>&1
    cat "$LOG/bench.tmp" >> "$LOG/test_cuda.log"
    grep '^bench' "$LOG/bench.tmp"
    grep '^bench-conv:' "$LOG/bench.tmp" | while IFS= read -r l; do
        row "3b conv paths" "-" "$(echo "$l" | sed 's/^bench-conv: //')"
    done
    rm -f "$LOG/bench.tmp"
else
    row "2 GPU vs CPU parity" "SKIP" "no build/test_cuda"
fi

step "4. Fashion-MNIST demo on the GPU"
# build/fashion_gpu: examples/fashion.c with -DDL_CUDA, linked with dl_cuda.o (made by make cuda)
[ -f examples/fashion.c ] && make build/fashion_gpu WARN='-Wall -Wextra -pedantic' > "$LOG/fashion.log" 2>&1
if [ ! -x build/fashion_gpu ]; then
    echo "skipped: no build/fashion_gpu"
    row "4 fashion demo (1 epoch)" "SKIP" "build/fashion_gpu was not built (see fashion.log)"
elif [ ! -d "$DATA" ]; then
    echo "skipped: no data folder $DATA"
    row "4 fashion demo (1 epoch)" "SKIP" "no data in $DATA"
else
    timeout 240 build/fashion_gpu --gpu --epochs 1 --data "$DATA" --save build/fashion_gpu.dl >> "$LOG/fashion.log" 2>&1
    rc=$?
    tail -8 "$LOG/fashion.log"
    acc=$(grep 'test accuracy' "$LOG/fashion.log" | tail -1)
    ips=$(grep -i 'img/s\|images/s' "$LOG/fashion.log" | tail -1)
    # the issue asks for 0.90 after one epoch; PyTorch itself reaches about 0.89 (see bench/torch_fashion.py)
    if [ $rc -eq 0 ] && [ -n "$acc" ]; then
        if awk -v a="${acc##* }" 'BEGIN { exit !(a >= 0.90) }'; then row "4 fashion demo (1 epoch)" "PASS" "$acc; $ips"
        else row "4 fashion demo (1 epoch)" "BELOW 0.90" "$acc; $ips"; status=1; fi
    else row "4 fashion demo (1 epoch)" "FAIL" "exit $rc: $(tail -1 "$LOG/fashion.log")"; status=1; fi
fi

step "5. PyTorch baseline"
if [ ! -f bench/torch_fashion.py ]; then
    echo "skipped: no bench/torch_fashion.py yet"
    row "5 torch baseline" "SKIP" "bench/torch_fashion.py does not exist yet"
else
    args="--device cuda --epochs 1"
    python3 bench/torch_fashion.py --help 2>/dev/null | grep -q -- '--data' && args="$args --data $DATA"
    timeout 240 python3 bench/torch_fashion.py $args > "$LOG/torch.log" 2>&1
    rc=$?
    tail -8 "$LOG/torch.log"
    res=$(grep -i 'img/s\|images/s\|accuracy' "$LOG/torch.log" | tail -2 | tr '\n' ' ')
    if [ $rc -eq 0 ]; then row "5 torch baseline" "ran" "$res"
    else row "5 torch baseline" "error" "exit $rc: $(tail -1 "$LOG/torch.log")"; fi
fi

step "5b. PyTorch + cuDNN throughput on this GPU (bench/torch_ref.py --device cuda): the nets of step 3"
if [ -f bench/torch_ref.py ] && python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2> /dev/null; then
    timeout 150 python3 bench/torch_ref.py --device cuda --secs 0.5 > "$LOG/torch_ref.log" 2>&1
    tail -4 "$LOG/torch_ref.log"
    for n in reference cifar resnet; do
        for b in 64 256 1024; do
            t=$(grep "^cuda_train_ips_${n}_$b " "$LOG/torch_ref.log" | cut -d' ' -f2 | cut -d. -f1)
            i=$(grep "^cuda_infer_ips_${n}_$b " "$LOG/torch_ref.log" | cut -d' ' -f2 | cut -d. -f1)
            row "5b torch $n b$b" "-" "train ${t:-?} img/s, inference ${i:-?} img/s"
        done
    done
else
    row "5b torch + cuDNN" "SKIP" "no bench/torch_ref.py or no PyTorch with CUDA"
fi

step "5c. NCCL adapter: one GPU through ncclAllReduce = the plain GPU run"
# build/dist_nccl: examples/dist/mpi.c + nccl.cu (docs/SCALING.md); needs mpirun (openmpi-bin)
if ! command -v mpirun > /dev/null 2>&1 || ! make build/dist_nccl WARN='-Wall -Wextra -pedantic' > "$LOG/nccl.log" 2>&1; then
    row "5c NCCL 1 GPU = plain" "SKIP" "no mpirun or build/dist_nccl not built (see nccl.log)"
else
    a="--data examples/data/fashion-mnist-subset --batch 64 --steps 100 --print-every 25 --timeout 60 --gpu"
    for m in nccl solo; do
        [ $m = solo ] && a="$a --solo"
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 90 mpirun -np 1 --allow-run-as-root \
            build/dist_nccl $a > "$LOG/nccl_$m.out" 2>> "$LOG/nccl.log"
        cat "$LOG/nccl_$m.out" >> "$LOG/nccl.log"
    done
    tail -3 "$LOG/nccl_nccl.out"
    f=$(grep '^final' "$LOG/nccl_nccl.out")
    if [ -n "$f" ] && [ "$(grep '^step\|^final' "$LOG/nccl_nccl.out")" = "$(grep '^step\|^final' "$LOG/nccl_solo.out")" ]; then
        row "5c NCCL 1 GPU = plain" "PASS" "100 steps, equal hashes: $f"
    else row "5c NCCL 1 GPU = plain" "FAIL" "nccl: ${f:-none}; plain: $(grep '^final' "$LOG/nccl_solo.out")"; status=1; fi
    rm -f "$LOG/nccl_nccl.out" "$LOG/nccl_solo.out"

    step "5d. synchronised batchnorm on the GPU: batchnorm sums through ncclSum, 1 GPU = the plain GPU run"
    # The sums travel as floats: equal to float rounding, not bit for bit (docs/SCALING.md).
    a="--data examples/data/fashion-mnist-subset --batch 32 --steps 1 --timeout 60 --gpu --model ref --optim sgd --lr 0.01"
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 90 mpirun -np 1 --allow-run-as-root \
        build/dist_nccl $a --solo --ckpt build/nccl_plain.dl >> "$LOG/nccl.log" 2>&1
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 90 mpirun -np 1 --allow-run-as-root \
        build/dist_nccl $a --sync-bn --against build/nccl_plain.dl > "$LOG/nccl_sync.out" 2>> "$LOG/nccl.log"
    cat "$LOG/nccl_sync.out" >> "$LOG/nccl.log"
    g=$(sed -n 's/^against .*largest difference \([^ ]*\) .*/\1/p' "$LOG/nccl_sync.out")
    if [ -n "$g" ] && awk -v g="$g" 'BEGIN { exit !(g <= 1e-4) }'; then row "5d synced batchnorm, 1 GPU" "PASS" "largest difference $g after a step"
    else row "5d synced batchnorm, 1 GPU" "FAIL" "largest difference ${g:-none} (see nccl.log)"; status=1; fi
    rm -f "$LOG/nccl_sync.out" build/nccl_plain.dl
fi

# 6. memory and shared-memory race checks of every kernel (cuBLAS's too), as time allows
for tool in memcheck racecheck; do
    step "6. compute-sanitizer --tool $tool"
    left=$(( 330 - $(secs) ))
    if ! command -v compute-sanitizer > /dev/null 2>&1 || [ ! -x build/test_cuda ]; then
        row "6 sanitizer $tool" "SKIP" "no compute-sanitizer or no build"; continue
    fi
    if [ $left -lt 45 ]; then row "6 sanitizer $tool" "SKIP" "out of time"; continue; fi
    timeout $left compute-sanitizer --tool $tool --print-limit 20 --error-exitcode 9 build/test_cuda --quick > "$LOG/san.tmp" 2>&1
    rc=$?
    { echo "== compute-sanitizer --tool $tool: exit $rc"; cat "$LOG/san.tmp"; } >> "$LOG/sanitizer.log"
    tail -4 "$LOG/san.tmp"
    verdict=$(grep 'ERROR SUMMARY\|RACECHECK SUMMARY' "$LOG/san.tmp" | tail -1)
    rm -f "$LOG/san.tmp"
    case $rc in
    0) row "6 sanitizer $tool" "PASS" "$verdict" ;;
    9) row "6 sanitizer $tool" "FAIL" "$verdict"; status=1 ;;
    124) row "6 sanitizer $tool" "TIMEOUT" "no verdict in ${left}s" ;;
    *) row "6 sanitizer $tool" "error" "exit $rc: $verdict" ;;
    esac
done

{ printf '%-30s %-8s %s\n' "step" "result" "details"; cat "$SUM"; } > "$SUM.tmp" && mv "$SUM.tmp" "$SUM"
printf '\n== summary (%ss, logs in %s)\n' "$(secs)" "$LOG"
cat "$SUM"
exit $status
