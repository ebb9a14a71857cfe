# Shortcuts for the scripts, which are the real interface: they need only
# bash and Go, and a fresh machine may have no make.

.PHONY: help run test bench generate
help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the service on :8080 against a local database (scripts/run)
	./scripts/run

test: ## everything CI runs: vet, sqlc diff and vet, go test -race (scripts/test)
	./scripts/test

bench: ## the benchmark table and chart (scripts/bench)
	./scripts/bench

generate: ## regenerate db/ from sql/ with the pinned sqlc
	go tool -modfile=tools/go.mod sqlc generate
