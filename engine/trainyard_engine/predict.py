"""`yard predict`: run a job's weights on images and say what was found.

Prints one line per image (the classes found, with their confidence) and
where the annotated copies are, so a newcomer sees what a model learned."""

from pathlib import Path


def predict(model, source, save_dir, conf=0.25, imgsz=None, out=print):
    from ultralytics import YOLO

    if not Path(model).is_file():
        raise SystemExit(f"--model: no weights file at {model}")
    if not Path(source).exists():
        raise SystemExit(f"source: no image or folder at {source}")
    save_dir = Path(save_dir).resolve()
    kwargs = {"conf": conf, "save": True, "project": str(save_dir.parent), "name": save_dir.name,
              "exist_ok": True, "verbose": False, "stream": True}
    if imgsz:
        kwargs["imgsz"] = imgsz
    images = 0
    for result in YOLO(model).predict(source, **kwargs):
        images += 1
        name = Path(result.path).name
        if result.probs is not None:  # a classifier: its top class
            top = int(result.probs.top1)
            out(f"{name}: {result.names[top]} {float(result.probs.top1conf):.2f}")
            continue
        found = sorted(((result.names[int(c)], float(p)) for c, p in zip(result.boxes.cls, result.boxes.conf)),
                       key=lambda item: -item[1])
        out(f"{name}: " + (", ".join(f"{label} {p:.2f}" for label, p in found) if found else "nothing"))
    if images == 0:
        raise SystemExit(f"source: no images in {source}")
    out(f"{images} image{'s' if images != 1 else ''}; annotated copies in {save_dir}")
    return 0
