# tollgate: the two commands are `make demo` and `make test`.
.PHONY: test demo bench deploy ddb-start ddb-stop tools clean-local

## Install what is missing, start DynamoDB Local, run fmt, clippy, lints and every test.
test:
	scripts/test.sh

## Run the whole suite locally on DynamoDB Local and show what it does.
demo:
	scripts/demo.sh

## Run the criterion benchmarks and the cost harness.
bench:
	scripts/bench.sh

## Deploy one stack per region: make deploy REGIONS="eu-central-1 us-east-1" [STAGE=prod] [ARCH=arm64]
## [BACKEND_URL=https://api.example.com] [DRY_RUN=1: change sets only] [PLAN=1: print the commands].
STAGE ?= prod
ARCH ?= arm64
deploy:
	scripts/deploy.sh --regions "$(REGIONS)" --stage "$(STAGE)" --arch "$(ARCH)" \
	  $(if $(BACKEND_URL),--backend-url "$(BACKEND_URL)") $(if $(DRY_RUN),--dry-run) $(if $(PLAN),--plan)

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
