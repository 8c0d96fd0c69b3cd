# Supply chain and secret scanning, `make security` (part of `make check`). Included by the Makefile
# (SHELL, BIN, TVENV, the venv targets).
#
#   make bandit       security lint of our code ([tool.bandit] in pyproject.toml justifies each skipped rule)
#   make pip-audit    known vulnerabilities in every locked requirements file (names, versions, hashes)
#   make secrets      detect-secrets over every tracked file against the audited .secrets.baseline

BANDIT_TARGETS := src/ctloop serving scripts feature_repo reliability
# every lock file: what the images ship (platform, serving), what developers and CI run (dev, tools),
# the benchmark baseline; a new lock file is audited without touching this line
AUDIT_LOCKS := $(sort $(wildcard requirements/*.txt))
# Advisories that do not apply to us, one `--ignore-vuln ID` per line, each with why and until when:
#   (none: every locked package had no known vulnerability when this list was last reviewed)
AUDIT_IGNORES :=
# The audit asks PyPI's JSON API for each pinned version's advisories (PyPA's database, as on
# osv.dev). `required` fails when that API cannot be reached; `warn` prints that nothing was
# audited and goes on. CI (CI=true, as GitHub Actions sets it) always requires the audit; a
# developer's machine may not reach the per-version API while it reaches the package downloads:
# there it warns, loudly, unless PIP_AUDIT=required. The probe is pip-audit itself auditing one
# pinned package with --strict: it fails when its vulnerability service does not answer.
PIP_AUDIT ?= $(if $(filter true 1,$(CI)),required,warn)
AUDIT_PROBE := pip-audit==2.10.1

.PHONY: security bandit pip-audit secrets

security: bandit pip-audit secrets ## bandit, pip-audit on the lock files, secret scan (part of make check)

bandit: $(VENV)/.synced ## security lint of src/ctloop, serving, scripts, feature_repo, reliability
	$(BIN)/bandit -c pyproject.toml -q -r $(BANDIT_TARGETS)

pip-audit: $(TVENV)/.synced ## known vulnerabilities in every requirements/*.txt lock (PIP_AUDIT=required|warn)
	@# --disable-pip: the hashed locks are the complete list (no resolution); --strict: a package
	@# that cannot be audited fails the run instead of being skipped
	@case "$(PIP_AUDIT)" in required|warn) ;; *) echo "error: PIP_AUDIT must be required or warn, not '$(PIP_AUDIT)'" >&2; exit 2;; esac; \
	probe=$$(mktemp) && echo "$(AUDIT_PROBE)" > "$$probe"; \
	if ! timeout 120 $(TVENV)/bin/pip-audit -r "$$probe" --no-deps --disable-pip --strict --progress-spinner off \
	    >/dev/null 2>&1; then \
	  rm -f "$$probe"; \
	  why="PyPI's vulnerability API cannot be reached from here (auditing $(AUDIT_PROBE) alone failed)"; \
	  if [ "$(PIP_AUDIT)" = required ]; then \
	    echo "error: pip-audit: $$why, so the lock files cannot be audited (CI requires it; PIP_AUDIT=warn goes on without)" >&2; \
	    exit 1; \
	  fi; \
	  echo "WARNING: pip-audit: $$why: the lock files were NOT audited. CI audits them (PIP_AUDIT=required)." >&2; \
	  exit 0; \
	fi; \
	rm -f "$$probe"; \
	for lock in $(AUDIT_LOCKS); do \
	  echo "pip-audit $$lock"; \
	  $(TVENV)/bin/pip-audit -r "$$lock" --require-hashes --disable-pip --strict --progress-spinner off \
	    $(AUDIT_IGNORES) || exit 1; \
	done

secrets: $(VENV)/.synced $(TVENV)/.synced ## detect-secrets over the tracked files: fails on a candidate not audited in .secrets.baseline
	$(BIN)/python scripts/secret_scan.py --hook $(TVENV)/bin/detect-secrets-hook
