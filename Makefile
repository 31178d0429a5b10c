# Weft's build. `make run` and `make test` are the two commands a newcomer needs;
# everything a new machine lacks is installed from the package registries here.
SHELL := /bin/bash
ORT_VERSION := 1.30.0
ORT_DIR := .deps/onnxruntime
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
GO ?= go

.PHONY: all build run test deps lint models eval clean train-deps

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

# The API suite (http/) runs on SQLite, then again on PostgreSQL when
# WEFT_TEST_POSTGRES_URL names a server (.ci/run starts one).
test: build
	$(GO) test -count=1 ./...
	@if [ -n "$$WEFT_TEST_POSTGRES_URL" ]; then \
		echo "API suite on PostgreSQL:"; WEFT_TEST_STORE=postgres $(GO) test -count=1 ./http/; \
	else echo "WEFT_TEST_POSTGRES_URL unset: API suite not run on PostgreSQL"; fi

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Training uses Debian's Python and PyTorch (CPU); see models/README.md.
PY := /usr/bin/python3
TRAIN_PKGS := python3-torch python3-torchvision python3-onnx python3-numpy python3-pil python3-scipy
train-deps:
	@$(PY) -c 'import torch, torchvision, onnx, numpy, PIL, scipy' 2>/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TRAIN_PKGS))

models: train-deps
	$(PY) train/train_tagger.py
	$(PY) train/eval_tagger.py --json models/tagger_metrics.json
	$(PY) train/calibrate_colour.py
	$(PY) train/train_detector.py

eval: build
	./bin/weft eval --shared ../shared

clean:
	rm -rf bin .cache
