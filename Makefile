# Shortcuts for the two test targets. `ASTERISK=22 make test` == `make test-ast22`.
# Extra pytest arguments: `make test ARGS="tests/unit -x"`.
ASTERISK ?= $(CALLCTL_ASTERISK)
ARGS ?=

.PHONY: test test-ast22 install-ast22 lock

test:
	CALLCTL_ASTERISK=$(ASTERISK) bash scripts/test.sh $(ARGS)

test-ast22:
	CALLCTL_ASTERISK=22 bash scripts/test.sh $(ARGS)

install-ast22:
	bash scripts/install-ast22.sh

# Re-lock the Python dependencies after changing them in pyproject.toml (see scripts/lock.sh).
lock:
	bash scripts/lock.sh $(ARGS)
