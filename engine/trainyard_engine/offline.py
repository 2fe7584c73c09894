"""Makes Ultralytics run with no network: called before it is imported."""

import os
import shutil
from pathlib import Path


def find_font():
    """A TTF to stand in for Arial: Debian's DejaVu, else matplotlib's copy."""
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except Exception:
        pass
    return next((c for c in candidates if c.is_file()), None)


def prepare(config_dir):
    """Private config dir, offline mode, no sync, a local font. Returns the
    Ultralytics user config folder."""
    config_dir = Path(config_dir)
    user_dir = config_dir / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "True")
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = user_dir / name
        if not target.exists():
            font = find_font()
            if font is not None:
                shutil.copyfile(font, target)
    return user_dir


def disable_sync():
    """After import: make sure the settings object agrees."""
    try:
        from ultralytics import settings

        if settings.get("sync"):
            settings.update({"sync": False})
    except Exception:
        pass
