# dl.h - `make test` runs the suite, `make demo` trains the Fashion-MNIST CNN.
CC      ?= cc
CXX     ?= c++
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -pedantic -Werror
LDLIBS   = -lm -pthread
B        = build

# Every test is one C file that includes dl.h with its implementation
# (test_cuda.c also needs the CUDA backend: see below).
TESTS    = $(patsubst tests/%.c,$(B)/%,$(filter-out tests/test_cuda.c,$(wildcard tests/test_*.c)))

.PHONY: all test test-sanitize valgrind demo examples bench fuzz cuda clean
all: $(TESTS) examples

$(B)/%: tests/%.c dl.h tests/test.h
	@mkdir -p $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

# The examples. `make demo ARGS="--epochs 5"` passes options; DATA=dir picks the data.
EXAMPLES = $(B)/fashion $(B)/classify
examples: $(EXAMPLES)
$(EXAMPLES): $(B)/%: examples/%.c dl.h examples/idx.h
	@mkdir -p $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

demo: $(EXAMPLES)
	$(B)/fashion --save $(B)/fashion.dl --dump-samples $(B)/samples $(ARGS)

$(B)/test_fashion: examples/fashion.c examples/idx.h

# The header must also compile as C++ (implementation included).
$(B)/cxx_check: tests/test_core.c dl.h
	@mkdir -p $(B)
	$(CXX) -std=c++11 -Wall -Wextra -Werror $(CFLAGS) -x c++ -I. $< -o $@ $(LDLIBS)

test: $(TESTS) $(B)/cxx_check $(B)/test_cuda_emu
	@sh tests/run.sh $(TESTS) $(B)/cxx_check $(B)/test_cuda_emu

# The CUDA backend. `make cuda` needs nvcc (on a GPU machine: sh tests/gpu_check.sh);
# test_cuda_emu runs the same dl_cuda.cu on the CPU against tests/cuda_emu.h.
NVCC    ?= $(shell command -v nvcc || echo /usr/local/cuda/bin/nvcc)
NVFLAGS ?= -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 -Xcompiler -Wall,-Wextra
cuda: $(B)/test_cuda $(B)/fashion_gpu
$(B)/dl_cuda.o: dl_cuda.cu dl.h
	@mkdir -p $(B)
	$(NVCC) $(NVFLAGS) -I. -c $< -o $@
$(B)/test_cuda: tests/test_cuda.c $(B)/dl_cuda.o dl.h tests/test.h
	$(CC) -std=c99 $(WARN) $(CFLAGS) -I. -c $< -o $@.o
	$(NVCC) $@.o $(B)/dl_cuda.o -o $@ -lcublas -lm -lpthread -Xlinker -rpath=$(dir $(NVCC))../lib64
$(B)/fashion_gpu: examples/fashion.c examples/idx.h $(B)/dl_cuda.o dl.h
	$(CC) -std=c99 $(WARN) $(CFLAGS) -DDL_CUDA -I. -c $< -o $@.o
	$(NVCC) $@.o $(B)/dl_cuda.o -o $@ -lcublas -lm -lpthread -Xlinker -rpath=$(dir $(NVCC))../lib64
$(B)/test_cuda_emu: tests/test_cuda.c dl_cuda.cu dl.h tests/test.h tests/cuda_emu.h
	@mkdir -p $(B)
	$(CXX) -std=c++11 -Wall -Wextra -Werror $(CFLAGS) -DDLC_EMULATE -x c++ -I. -c dl_cuda.cu -o $@.backend.o
	$(CC) -std=c99 $(WARN) $(CFLAGS) -DDLC_EMULATE -I. -c tests/test_cuda.c -o $@.o
	$(CXX) $@.o $@.backend.o -o $@ $(LDLIBS)

# ASan + UBSan with clang: any report fails the run.
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-sanitize:
	@mkdir -p $(B)/san
	@for t in $(notdir $(TESTS)); do \
	  clang -std=c99 $(WARN) -O1 -g $(SAN) -I. tests/$$t.c -o $(B)/san/$$t $(LDLIBS) || exit 1; done
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh $(addprefix $(B)/san/,$(notdir $(TESTS)))

valgrind: $(TESTS)
	@for t in $(TESTS); do printf '#!/bin/sh\nexec valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect %s "$$@"\n' $$t > $$t.vg; chmod +x $$t.vg; done
	@sh tests/run.sh $(addsuffix .vg,$(TESTS))

clean:
	rm -rf $(B)
