# tollgate: the two commands are `make demo` and `make test`.
.PHONY: test demo bench ddb-start ddb-stop tools clean-local

## Install what is missing, start DynamoDB Local, run fmt, clippy, lints and every test.
test:
	scripts/test.sh

## Run the whole suite locally on DynamoDB Local and show what it does.
demo:
	scripts/demo.sh

## Run the criterion benchmarks and the cost harness.
bench:
	scripts/bench.sh

## Start DynamoDB Local on a free loopback port and print its endpoint.
ddb-start:
	@scripts/dynamodb-local.sh start

ddb-stop:
	@scripts/dynamodb-local.sh stop

## Install cargo-lambda, aws-sam-cli and cfn-lint into .local/venv.
tools:
	@scripts/tools.sh

## Remove everything installed under .local.
clean-local: ddb-stop
	rm -rf .local
