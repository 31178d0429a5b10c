# Weft's build. `make run` and `make test` are the two commands a newcomer needs;
# everything a new machine lacks is installed from the package registries here.
SHELL := /bin/bash
ORT_VERSION := 1.30.0
ORT_DIR := .deps/onnxruntime
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
GO ?= go

.PHONY: all build run test deps lint models eval clean

all: build

# ONNX Runtime's shared library ships inside the npm package onnxruntime-node;
# npm pack fetches it from the registry without running its install script
# (which would try a download that is not allowed here).
$(ORT_LIB):
	@mkdir -p $(ORT_DIR) .cache
	cd .cache && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	tar -xzf .cache/onnxruntime-node-$(ORT_VERSION).tgz -C $(ORT_DIR) --strip-components=5 \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	@test -f $(ORT_LIB)

deps: $(ORT_LIB)

build: deps
	$(GO) build -o bin/weft ./cmd/weft

run: build
	./bin/weft serve --addr localhost:8080 --data ./data

test: build
	$(GO) test -count=1 ./...

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

clean:
	rm -rf bin .cache
