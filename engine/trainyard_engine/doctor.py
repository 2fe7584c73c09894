"""What the engine's Python can do: versions, devices, optional extras."""

import importlib
import platform
import sys


def report():
    info = {"python": platform.python_version(), "executable": sys.executable, "problems": []}
    for name in ("ultralytics", "torch", "onnx", "onnxruntime", "onnxslim", "optuna"):
        try:
            module = importlib.import_module(name)
            info[name] = getattr(module, "__version__", "installed")
        except Exception as error:  # noqa: BLE001
            info[name] = None
            if name in ("ultralytics", "torch"):
                info["problems"].append(f"{name} cannot be imported ({type(error).__name__}); run scripts/setup.sh or point --python at an environment that has it")
    devices = []
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                devices.append({"index": i, "name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)})
    except Exception:
        pass
    info["cuda_devices"] = devices
    return info
