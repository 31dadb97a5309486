# weir — build, test, run.
#   make deps    install missing Debian packages (apt-get)
#   make all     build/weir, build/weir-tests, build/weir-load, build/weir-swim-sim
#   make test    unit + socket tests (GoogleTest), then interop tests
#   make run     deps + build + start weir on its embedded defaults
#   make asan | tsan | bench | fuzz-smoke | format | docs
#
# BUILD picks the output folder (make BUILD=build-asan ...); SRCS may be narrowed
# to build only some layers while others are being written.

MAKEFLAGS += -j$(shell nproc)
CXX      ?= g++
CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2
SAN      ?=
CXXFLAGS += -std=c++20 $(OPT) -g -Wall -Wextra -Werror -pthread -I. -isystem $(LLHTTP_INC) $(SAN)
CFLAGS   += $(OPT) -g -isystem $(LLHTTP_INC) $(SAN)
LDFLAGS  += -pthread $(SAN)
LDLIBS   += -lssl -lcrypto -lz -lsimdjson -lsqlite3 -lhiredis

LLHTTP_INC := /usr/share/include/llhttp
LLHTTP_SRC := $(wildcard /usr/share/llhttp/*.c)

LAYERS   := core net ws cluster store server
SRCS     ?= $(filter-out server/main.cc,$(foreach d,$(LAYERS),$(wildcard $(d)/*.cc)))
TEST_SRCS ?= $(wildcard tests/*_test.cc)
LOAD_SRCS := $(wildcard tools/load/*.cc)
BENCH_SRCS := $(wildcard bench/*_bench.cc)

OBJS       := $(SRCS:%.cc=$(BUILD)/%.o) $(patsubst /usr/share/llhttp/%.c,$(BUILD)/llhttp/%.o,$(LLHTTP_SRC))
TEST_OBJS  := $(TEST_SRCS:%.cc=$(BUILD)/%.o)
LOAD_OBJS  := $(LOAD_SRCS:%.cc=$(BUILD)/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.cc=$(BUILD)/%.o)
# The SWIM simulation's core (tools/swim_sim/) is shared by weir-swim-sim and weir-tests.
SIM_OBJS   := $(BUILD)/tools/swim_sim/sim_cluster.o
LIB        := $(BUILD)/libweir.a

# The web pages (server/web/*) are compiled into the server: a .cc generated in the build folder.
WEB_ASSETS := $(sort $(wildcard server/web/*.html server/web/*.css server/web/*.js))
ifneq ($(filter server/%,$(SRCS)),)
OBJS       += $(BUILD)/gen/web_assets.o
endif

DEB_PKGS := g++ make libssl-dev libsimdjson-dev node-llhttp googletest libgtest-dev libbenchmark-dev \
            zlib1g-dev libhiredis-dev libsqlite3-dev redis-server python3 python3-websockets \
            clang libclang-rt-14-dev clang-format openssl procps chromium python3-yaml iproute2

.PHONY: all deps test run asan tsan bench fuzz-build fuzz-smoke format docs clean
all: $(BUILD)/weir $(BUILD)/weir-tests $(BUILD)/weir-load $(BUILD)/weir-swim-sim

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/web_assets.cc: $(WEB_ASSETS) tools/embed_assets.py
	@mkdir -p $(dir $@)
	python3 tools/embed_assets.py $@ $(WEB_ASSETS)

$(BUILD)/gen/web_assets.o: $(BUILD)/gen/web_assets.cc
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/llhttp/%.o: /usr/share/llhttp/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/weir: $(BUILD)/server/main.o $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/weir-tests: $(TEST_OBJS) $(SIM_OBJS) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lgtest -lgtest_main -o $@

$(BUILD)/weir-load: $(LOAD_OBJS) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/weir-swim-sim: $(BUILD)/tools/swim_sim/swim_sim.o $(SIM_OBJS) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/weir-bench: $(BENCH_OBJS) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lbenchmark -lbenchmark_main -o $@

# Installs only what is missing, so a second run costs one dpkg query.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# Node may come from outside Debian (it does on these machines): ask for the command, not the package.
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	@[ -d tests/interop/node_modules/ws ] || (cd tests/interop && npm install --no-audit --no-fund --silent)

test: all
	bash tests/run_all.sh $(BUILD)

# deps must finish before anything compiles: sequential sub-makes, not prerequisites (-j).
run:
	$(MAKE) deps
	$(MAKE) all
	@mkdir -p data
	$(BUILD)/weir --store sqlite:data/weir.db --session-secret-file data/session.key

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	SKIP_FUZZ=1 ASAN_OPTIONS=detect_leaks=1 bash tests/run_all.sh build-asan

tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" all
	SKIP_FUZZ=1 TSAN_OPTIONS=halt_on_error=1 bash tests/run_all.sh build-tsan

bench: $(BUILD)/weir-bench $(BUILD)/weir $(BUILD)/weir-load
	taskset -c 0 $(BUILD)/weir-bench --benchmark_min_time=0.2

# libFuzzer targets: the library is built once with clang and the sanitizers (llhttp as C),
# then each tests/fuzz/*_fuzz.cc links against it.
FUZZERS := $(patsubst tests/fuzz/%.cc,%,$(wildcard tests/fuzz/*_fuzz.cc))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
fuzz-build:
	$(MAKE) BUILD=build-fuzz CXX=clang++ CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" \
	  SRCS="$(filter-out server/%,$(SRCS))" build-fuzz/libweir.a
	for f in $(FUZZERS); do \
	  clang++ -std=c++20 -O1 -g -I. -isystem $(LLHTTP_INC) -fsanitize=fuzzer,address,undefined \
	    tests/fuzz/$$f.cc build-fuzz/libweir.a $(LDLIBS) -pthread -o build-fuzz/$$f || exit 1; \
	done

fuzz-smoke: fuzz-build
	for f in $(FUZZERS); do \
	  mkdir -p build-fuzz/corpus-$$f; \
	  build-fuzz/$$f -max_total_time=$${FUZZ_SECONDS:-30} -print_final_stats=1 \
	    build-fuzz/corpus-$$f tests/fuzz/corpus/$$f || exit 1; \
	done

docs: $(BUILD)/weir
	tools/gen_flags_md.sh $(BUILD) docs/flags.md

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(OBJS:.o=.d) $(BUILD)/server/main.d $(TEST_OBJS:.o=.d) $(LOAD_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) \
  $(SIM_OBJS:.o=.d) $(BUILD)/tools/swim_sim/swim_sim.d
