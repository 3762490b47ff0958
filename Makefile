# The two commands of the README's Quick start. Both install what is missing first.
.PHONY: demo test deps bench fixtures

deps:
	./Scripts/install-dependencies.sh

demo: deps
	swift build --product Demo
	swift build --product Shop
	.build/debug/Demo
	@echo "\n4. The issue's example (Examples/Shop): a consumer process prints what it gets"
	.build/debug/Shop

# `swift build` first: the tool tests run the built `msgpack` executable.
# Python's msgpack lets the tests check that a Python process reads our frames. One
# test at a time: after each multi-process test, the leak check compares this
# process's descriptors, /dev/shm and children with what they were before.
test:
	./Scripts/install-dependencies.sh --python
	swift build --build-tests
	SWIFT_MULTIPROCESSING_LEAK_CHECK=1 swift test --skip-build --no-parallel

# The benchmarks (release mode): the codec against JSON and msgpack-c by hand, then
# queues between processes against Python's multiprocessing.Queue, faster-fifo (pip,
# installed by --bench if it can be) and C floors: a pipe and a shared-memory ring.
bench:
	./Scripts/install-dependencies.sh --bench
	swift run -c release --package-path Benchmarks codec-bench
	swift run -c release --package-path Benchmarks queue-bench

# Regenerates Fixtures/messagepack with Python's msgpack (the output is committed).
fixtures:
	./Scripts/install-dependencies.sh --python
	python3 Scripts/generate-messagepack-fixtures.py
