# Thin driver over CMake. The README's two commands:
#   make run    - the main job: train a small GPT-2 on the King James Bible with 2 MPI ranks and
#                 EDGC, and print what the compression saved
#   make test   - install missing packages, build with -Werror, run the tests, then again
#                 under AddressSanitizer + UBSan
# Other targets: build, data, bench, valgrind, fuzz, format, format-check, install, clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local

# One BLAS thread per process (MPI ranks share the 2 cores), and huge-page-backed malloc so large
# buffers do not fall off the mmap/munmap cliff (see the environment notes).
export OPENBLAS_NUM_THREADS ?= 1
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1
export OMPI_MCA_rmaps_base_oversubscribe = 1

.PHONY: all deps build data run test test-asan fuzz fuzz-seeds bench valgrind format format-check \
        install clean

# make run's settings; override on the command line, e.g. make run STEPS=2000 NP=4 LINK=1gbit
# (LINK=shm: shared memory, no emulated link)
NP        ?= 2
STEPS     ?= 400
LINK      ?= 100mbit
RUN_FLAGS ?= --preset tiny --steps $(STEPS) --compress edgc --eval-every 100

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGC_WERROR=ON >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	@EDGC_WITH_TORCH=1 bash scripts/install-deps.sh
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j $(JOBS)
	$(MAKE) --no-print-directory test-asan
	@if command -v clang >/dev/null 2>&1; then $(MAKE) --no-print-directory fuzz; \
	else echo "make test: no clang, so no libFuzzer run (the seed corpora were replayed above)"; fi

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DEDGC_WERROR=ON \
	    -DEDGC_SANITIZE="address;undefined;float-cast-overflow" -DEDGC_BUILD_BENCH=OFF >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    ctest --output-on-failure --timeout 600 -j $(JOBS)

# libFuzzer on the readers of untrusted files: FUZZ_SECONDS, the harnesses side by side (clang is
# installed for this target only; the library and the trainer's readers also build with -Werror
# under clang here).
fuzz:
	@EDGC_WITH_FUZZ=1 bash scripts/install-deps.sh
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DEDGC_WERROR=ON -DEDGC_FUZZ=ON -DEDGC_WITH_MPI=OFF -DEDGC_BUILD_TESTS=OFF \
	    -DEDGC_BUILD_BENCH=OFF -DEDGC_BUILD_EXAMPLES=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Rewrites the fuzz seed corpus from the current file formats.
fuzz-seeds: build
	rm -rf tests/fuzz/corpus && $(BUILD)/tests/fuzz/make_seeds tests/fuzz/corpus

data: data/kjv.txt

# The default corpus: the King James Bible from Debian's bible-kjv, verse references stripped.
data/kjv.txt: | deps
	mkdir -p data
	bible -f Gen1:1-Rev22:21 | sed 's/^[^ ]* //' > $@.tmp && mv $@.tmp $@

run: build data/kjv.txt
	bash scripts/run.sh $(BUILD) $(NP) $(LINK) $(RUN_FLAGS)

bench: build
	bash scripts/bench.sh $(BUILD)

valgrind: build
	bash scripts/valgrind.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
