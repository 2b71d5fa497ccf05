"""Face retrieval: build a memory of classifier embeddings, then query it with photos.

    python pipelines/retrieve.py build --checkpoint runs/vit/best --shards shards/rafdb --split train --memory runs/memory
    python pipelines/retrieve.py build --checkpoint runs/vit/best --folder frames/ --memory runs/memory_frames
    python pipelines/retrieve.py query --memory runs/memory --checkpoint runs/vit/best photo.jpg folder/ -k 5 \
        --out runs/memory/query

build writes MEMORY/index.faiss, items.jsonl (key, label, source) and meta.json; files that cannot be read and
photos without a face are listed in MEMORY/skipped.json. query detects and aligns every face of the query images
(--aligned: they are aligned faces already), writes OUT/results.jsonl and the sheet OUT/neighbours.png.
"""

import argparse
import json
import sys
from pathlib import Path

from pfvit.errors import UserError, cli_entry


@cli_entry
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("build", "query"))
    p.add_argument("inputs", nargs="*", help="query: image files or folders")
    p.add_argument("--checkpoint", required=True, help="a pfvit classifier checkpoint")
    p.add_argument("--memory", required=True, help="the memory folder")
    p.add_argument("--shards", help="build: a shard folder …")
    p.add_argument("--split", default="train", help="… and its split")
    p.add_argument("--folder", help="build: a folder of photos or video frames (every face is added)")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--aligned", action="store_true", help="query images are aligned faces (no detection)")
    p.add_argument("--out", help="query: output folder (default MEMORY/query)")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one, else the CPU), cpu, cuda, cuda:N")
    args = p.parse_intermixed_args(argv)  # inputs may come after the options, as in the README
    # Imported after the parsing, so that --help and a bad flag answer without loading torch.
    from pfvit.data.align import FaceAligner
    from pfvit.eval.retrieval import FaceMemory, folder_faces, neighbour_sheet, query_faces, shard_faces
    from pfvit.inference import load_classifier, resolve_device
    from pfvit.predict import expand_inputs

    args.device = resolve_device(args.device)
    classifier = load_classifier(args.checkpoint).to(args.device)
    if args.action == "build":
        if (args.shards is None) == (args.folder is None):
            raise UserError("build needs exactly one source: --shards DIR (with --split) or --folder DIR")
        skipped = []
        faces = shard_faces(args.shards, args.split) if args.shards else \
            folder_faces(args.folder, FaceAligner(classifier.img_size, keep="all", device=args.device), skipped)
        memory = FaceMemory.build(classifier, faces, checkpoint=args.checkpoint)
        memory.save(args.memory)
        (Path(args.memory) / "skipped.json").write_text(json.dumps(skipped, indent=2))
        print(f"memory of {memory.meta['count']} faces in {args.memory}; {len(skipped)} inputs skipped")
        return 0
    memory = FaceMemory.load(args.memory)
    files, skipped = expand_inputs(args.inputs)
    aligner = None if args.aligned else FaceAligner(classifier.img_size, keep="all", device=args.device)
    queries, sources = query_faces(files, aligner, skipped)
    if not queries:
        raise UserError(f"no query face found in {args.inputs} ({len(skipped)} inputs skipped)")
    results = memory.search(classifier, queries, args.k)
    out = Path(args.out or Path(args.memory) / "query")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as fh:
        for source, hits in zip(sources, results):
            fh.write(json.dumps({"query": source, "neighbours": [
                {"score": round(s, 4), "key": it.key, "label": it.label, "source": it.source} for s, it in hits]})
                + "\n")
        for entry in skipped:
            fh.write(json.dumps({"query": entry["source"], "neighbours": [], "error": entry["error"]}) + "\n")
    neighbour_sheet(queries, results, out / "neighbours.png")
    print(f"{len(queries)} query faces → {out}/results.jsonl, {out}/neighbours.png; {len(skipped)} inputs skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
