# Reliability scenarios: `make reliability` runs the full set against the real local stack (Redis,
# feast serve, the Seldon microservice on free loopback ports, two registered models), prints the
# figures and merges them into bench/results/reliability.json, one key per scenario: fuzz,
# load_with_promotion, rollback_under_load, feature_server_kill, pipeline_kill. `make test` runs a
# fast subset (tests/serving/test_fuzz.py, test_rollback.py, test_endpoint.py and
# tests/reliability/test_pipeline_kill.py). Included by the Makefile (BIN, setup).
#
#   make reliability [FUZZ_REQUESTS=1500] [FUZZ_EXAMPLES=100] [FUZZ_SEED=0] [LOAD_SECONDS=120]
#                    [ROLLBACK_SECONDS=10] [FEATURE_SERVER_DOWN_S=5]
#   .venv/bin/python -m reliability.fuzz --url http://127.0.0.1:9000    (against `make serve`, or any endpoint)

FUZZ_REQUESTS ?= 1500
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 0
LOAD_SECONDS ?= 120
ROLLBACK_SECONDS ?= 10
FEATURE_SERVER_DOWN_S ?= 5

.PHONY: reliability

reliability: setup ## fuzzing, 2 min of load with a promotion, rollback and faults under load, a killed pipeline: bench/results/reliability.json
	CTLOOP_RELIABILITY=1 FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		LOAD_SECONDS=$(LOAD_SECONDS) ROLLBACK_SECONDS=$(ROLLBACK_SECONDS) FEATURE_SERVER_DOWN_S=$(FEATURE_SERVER_DOWN_S) \
		$(BIN)/pytest tests/reliability -p no:cacheprovider -q
	$(BIN)/python scripts/docs_blocks.py
