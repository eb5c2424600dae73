# Thin wrapper over CMake/CTest. The two commands a newcomer needs:
#   make demo   install what is missing, build, run the main job
#   make test   install what is missing, build, run every test (optimised
#               build, then the unit tests again under ASan + UBSan)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
CMAKE_ARGS ?=

.PHONY: all deps build asan demo test test-fast bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKN_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

demo: deps build
	@$(BUILD)/kennel demo

# Every test in the optimised build, then the unit-labelled ones (all but
# the *_heavy parity runs) under the sanitizers.
test: deps build asan
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -j$(JOBS) -L unit --output-on-failure

test-fast: build
	cd $(BUILD) && ctest -j$(JOBS) -L unit --output-on-failure

bench:
	bench/run.sh

fuzz:
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKN_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
