# The commands of the README's Quick start. Each installs what is missing first.
.PHONY: demo demo-durable bench-durable test deps bench charts fixtures fuzz fuzz-build docs

deps:
	./Scripts/install-dependencies.sh

demo: deps
	swift build --product Demo
	swift build --product Shop
	swift build --product AsyncShop
	swift build --product Squares
	@# Scene 9 measures speed: from a debug build its figures would mislead (several times too low).
	swift build -c release --product Demo
	.build/debug/Demo
	@echo "\n4. The README's first example (Examples/Shop): a consumer process prints what it gets"
	.build/debug/Shop
	@echo "\n5. The same with async/await (Examples/AsyncShop): a packer process, orders and receipts"
	.build/debug/AsyncShop
	@echo "\n6. A process pool (Examples/Squares): squares computed by 4 worker processes"
	.build/debug/Squares > .build/squares.txt && tail -3 .build/squares.txt
	@# Without Swift's backtracer: a worker's segfault in scene 8 is on purpose.
	SWIFT_BACKTRACE=enable=no .build/debug/Demo survival
	.build/release/Demo speed

# The README's DurableQueue example against a throwaway PostgreSQL cluster (Scripts/postgres.sh).
demo-durable: deps
	swift build --product DurableShop
	@set -e; trap './Scripts/postgres.sh stop' EXIT; \
		postgres_env="$$(./Scripts/postgres.sh start)"; eval "$$postgres_env"; \
		.build/debug/DurableShop

# `swift build` first: the tool tests run the built `msgpack` executable.
# Python's msgpack lets the tests check that a Python process reads our frames. One
# test at a time: after each multi-process test, the leak check compares this
# process's descriptors, /dev/shm and children with what they were before.
# Last, a short fuzzing pass (60 s) after replaying every kept finding, so that a
# change that brings back a crash, a hang or a huge allocation fails here.
# DurableQueue's tests need PostgreSQL: Scripts/postgres.sh installs it if missing and starts
# a throwaway cluster, stopped again when the tests end, pass or fail (the trap).
test:
	./Scripts/install-dependencies.sh --python
	swift build --build-tests
	@set -e; trap './Scripts/postgres.sh stop' EXIT; \
		postgres_env="$$(./Scripts/postgres.sh start)"; eval "$$postgres_env"; \
		echo "SWIFT_MULTIPROCESSING_POSTGRES_URL=$$SWIFT_MULTIPROCESSING_POSTGRES_URL"; \
		SWIFT_MULTIPROCESSING_LEAK_CHECK=1 swift test --skip-build --no-parallel
	$(MAKE) fuzz FUZZ_SECONDS=60 FUZZ_FLAGS=-seed=1

# The fuzzer (Fuzz/): libFuzzer with AddressSanitizer on every way bytes come in —
# typed decoding, MessagePackValue, the stream decoder, tagged JSON, and the
# Connection and Queue readers, and the pool's frames. `make fuzz FUZZ_SECONDS=3600` for an hour.
# FUZZ_FLAGS adds libFuzzer flags (`make test` fixes the seed, so its pass repeats).
FUZZ_SECONDS ?= 600
fuzz: deps fuzz-build
	FUZZ_FLAGS="$(FUZZ_FLAGS)" ./Scripts/fuzz.sh $(FUZZ_SECONDS)

# lld: the gold linker crashes on this link. -Xcc: the C code compiled here (the shims,
# msgpack-c's inline packing functions) is instrumented too.
fuzz-build:
	swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld \
		-Xcc -fsanitize=address -Xcc -fsanitize=fuzzer-no-link

# The benchmarks (release mode): the codec against JSON and msgpack-c by hand; queues
# between processes against Python's multiprocessing.Queue, faster-fifo (pip, installed by
# --bench if it can be) and C floors: a pipe and a shared-memory ring; the process pool
# against Python's Pool and ProcessPoolExecutor. Each one's output is shown and saved in
# docs/bench/ (bench-saved, below); last, `make charts` draws the tables into docs/*.svg.
bench:
	./Scripts/install-dependencies.sh --bench
	swift build -c release --package-path Benchmarks --product codec-bench
	swift build -c release --package-path Benchmarks --product queue-bench
	swift build -c release --package-path Benchmarks --product pool-bench
	$(call bench-saved,codec,codec-bench)
	$(call bench-saved,queue,queue-bench)
	$(call bench-saved,pool,pool-bench)
	$(MAKE) charts

# $(call bench-saved,NAME,PROGRAM) runs Benchmarks/.build/release/PROGRAM, its output shown
# and saved to docs/bench/NAME.txt under two lines that say when (git keeps no file dates),
# on what and by which command it was measured, which the charts print. The saved file is
# replaced only when the run succeeds: pipefail, so that the benchmark's failure is not hidden
# by tee's success. stdbuf -oL: each line shows as it is printed, not when the program ends.
define bench-saved
	@mkdir -p docs/bench
	bash -o pipefail -c '{ echo "Measured: $$(date -u "+%Y-%m-%d %H:%M UTC") on $$(uname -m)"; \
		echo "Command: make bench (Benchmarks/.build/release/$(2))"; echo; \
		stdbuf -oL Benchmarks/.build/release/$(2); } | tee Benchmarks/.build/$(1).txt'
	mv Benchmarks/.build/$(1).txt docs/bench/$(1).txt
endef

# Redraws docs/*.svg from the saved output in docs/bench/ (Scripts/charts.py), running no benchmark.
charts:
	python3 Scripts/charts.py

# DurableQueue between processes against pgbench running the same SQL, on a throwaway
# PostgreSQL cluster (Scripts/postgres.sh), stopped again afterwards.
bench-durable: deps
	swift build -c release --package-path Benchmarks --product durable-bench
	@set -e; trap './Scripts/postgres.sh stop' EXIT; \
		postgres_env="$$(./Scripts/postgres.sh start)"; eval "$$postgres_env"; \
		Benchmarks/.build/release/durable-bench

# Regenerates Fixtures/messagepack with Python's msgpack (the output is committed).
fixtures:
	./Scripts/install-dependencies.sh --python
	python3 Scripts/generate-messagepack-fixtures.py

# The API documentation (DocC): one archive per library in .build-docs/docs/, built apart from
# .build. Fails on a DocC warning, and lists and fails on public symbols with no documentation
# (Scripts/docs.sh says how).
docs: deps
	./Scripts/docs.sh
