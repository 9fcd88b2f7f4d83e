# Shorthands for the two set-up commands in the README.
.PHONY: demo test bootstrap

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bootstrap:
	bash scripts/bootstrap.sh
