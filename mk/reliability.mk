# Reliability scenarios: `make reliability` runs the full set against the real local stack (Redis,
# feast serve, the Seldon microservice on free loopback ports, two registered models), prints the
# figures and writes them to bench/results/reliability.json. `make test` runs a fast subset
# (tests/serving/test_fuzz.py). Included by the Makefile (BIN, setup).
#
#   make reliability [FUZZ_REQUESTS=1500] [FUZZ_EXAMPLES=100] [FUZZ_SEED=0]
#   .venv/bin/python -m reliability.fuzz --url http://127.0.0.1:9000    (against `make serve`, or any endpoint)

FUZZ_REQUESTS ?= 1500
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 0

.PHONY: reliability

reliability: setup ## fuzz the serving endpoint (>= 1,000 malformed requests + schemathesis): figures in bench/results/reliability.json
	CTLOOP_RELIABILITY=1 FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/pytest tests/reliability -p no:cacheprovider -q
