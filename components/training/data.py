"""Loading preprocessed splits for a model, and writing tiny synthetic ones for tests.

The preprocess stage writes ``<data>/<task>/<split>/<modality>.npy`` (float16 in [0, 1],
NCHW for stills, NTCHW for clips) plus ``y.npy`` and ``<task>/meta.json`` (see
docs/architecture.md). A model names the modalities it reads (``MODEL_INPUTS``); here they
are stacked channel-wise into one float32 tensor per batch, so multimodal fusion needs no
special code in the trainer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.data.io import to_grey
from components.errors import DataError

MODALITIES: tuple[str, ...] = ("color", "depth", "color2d", "frames")
COLOUR_MODALITIES: frozenset[str] = frozenset({"color", "color2d", "frames"})
# ITU-R BT.601 luma: the grey a 1-channel model would have seen from a grey camera.
OCC_SPLIT = re.compile(r"^test_occ(\d+)$")
PRELOAD_BYTES = 2 * 1024**3  # float32 splits below this are held in RAM as one tensor


@dataclass(frozen=True)
class MappedArray:
    """A ``.npy`` file memory-mapped whole: what a pickled :class:`SplitData` carries
    instead of the values, so another process maps the same file."""

    path: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, array: np.ndarray) -> MappedArray | None:
        """The file behind ``array`` when it is a whole ``.npy`` mapped by :func:`np.load`,
        else None (an in-memory array, or a slice or view of a mapped one)."""
        if not isinstance(array, np.memmap) or getattr(array, "_mmap", None) is None:
            return None
        try:
            whole = np.load(array.filename, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, TypeError):
            return None
        # a view of the file with its whole shape and strides can only be the whole file
        same = (whole.shape == array.shape and whole.dtype == array.dtype
                and whole.strides == array.strides)
        return cls(str(array.filename), tuple(array.shape), array.dtype.str) if same else None

    def open(self) -> np.ndarray:
        """The file mapped again, read-only; a file changed since is an error."""
        array = _open(Path(self.path))
        if array.shape != self.shape or array.dtype.str != self.dtype:
            raise DataError(f"{self.path}: changed while in use ({array.shape} {array.dtype}, "
                            f"was {self.shape} {self.dtype})")
        return array


@dataclass
class SplitData:
    """One split's inputs for a model: per-modality arrays joined on the channel axis.

    ``parts`` may be memory-mapped; a batch reads only its rows. ``grey[i]`` converts part i
    from RGB to one luma channel on read.
    """

    parts: list[np.ndarray]
    y: np.ndarray
    grey: list[bool] = field(default_factory=list)
    name: str = "split"
    _tensor: torch.Tensor | None = field(default=None, repr=False)
    _held: torch.Tensor | None = field(default=None, repr=False)  # the copy on a GPU

    def __post_init__(self) -> None:
        if not self.grey:
            self.grey = [False] * len(self.parts)
        self.y = np.array(self.y, dtype=np.int64)  # a writable copy, never the mmap
        for part in self.parts:
            if len(part) != len(self.y):
                raise DataError(f"{self.name}: {len(part)} inputs but {len(self.y)} labels")
            if part.ndim not in (4, 5):
                raise DataError(f"{self.name}: expected NCHW or NTCHW arrays, got {part.shape}")

    def __len__(self) -> int:
        return len(self.y)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for another process (an ensemble's members trained at once): a part
        memory-mapped whole from its ``.npy`` travels as that file's path, any other part
        as its values; the in-RAM copies (:meth:`preload`, :meth:`hold_on`) stay here."""
        state = dict(self.__dict__)
        state["parts"] = [MappedArray.of(part) or np.asarray(part) for part in self.parts]
        state["_tensor"] = state["_held"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["parts"] = [part.open() if isinstance(part, MappedArray) else part
                          for part in state["parts"]]
        self.__dict__.update(state)

    @property
    def channel_axis(self) -> int:
        """1 for stills (NCHW), 2 for clips (NTCHW)."""
        return self.parts[0].ndim - 3

    @property
    def is_clip(self) -> bool:
        """True for NTCHW clips."""
        return self.parts[0].ndim == 5

    @property
    def in_channels(self) -> int:
        """Channels after stacking and grey conversion: what the model's first layer sees."""
        axis = self.channel_axis
        return sum(1 if g else p.shape[axis] for p, g in zip(self.parts, self.grey, strict=True))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one stacked sample (C, H, W) or (T, C, H, W)."""
        shape = list(self.parts[0].shape[1:])
        shape[self.channel_axis - 1] = self.in_channels
        return tuple(shape)

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """Stacked float32 numpy rows for ``index`` (sorted reads keep mmap access local)."""
        if isinstance(index, slice):
            chunks = [np.asarray(p[index], dtype=np.float32) for p in self.parts]
        else:
            index = np.asarray(index, dtype=np.int64)
            chunks = [np.asarray(p[index], dtype=np.float32) for p in self.parts]
        chunks = [
            to_grey(c, self.channel_axis) if g else c
            for c, g in zip(chunks, self.grey, strict=True)
        ]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=self.channel_axis)

    def preload(self, max_bytes: int = PRELOAD_BYTES) -> bool:
        """Hold the whole split as one float32 tensor when it fits ``max_bytes``.

        Returns:
            True when the split is now in RAM (batches are then plain tensor indexing).
        """
        if self._tensor is None:
            nbytes = 4 * len(self) * int(np.prod(self.sample_shape))
            if nbytes > max_bytes:
                return False
            self._tensor = torch.from_numpy(np.ascontiguousarray(self.rows(slice(None))))
        return True

    def hold_on(self, device: torch.device) -> bool:
        """Keep a copy of the preloaded split on ``device`` when it is not the CPU.

        A GPU then slices its batches in its own memory instead of taking a host copy of
        each batch every step. Returns True when batches now come from ``device``.
        """
        if torch.device(device).type == "cpu" or self._tensor is None:
            return False
        if self._held is None or self._held.device != torch.device(device):
            self._held = self._tensor.to(device)
        return True

    def batch(self, index: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        """Float32 tensor of the stacked inputs for ``index`` (on the device the split is
        held on, see :meth:`hold_on`; else on the CPU)."""
        if self._held is not None:
            if isinstance(index, torch.Tensor):
                index = index.to(self._held.device)
            return self._held[index]
        if self._tensor is not None:
            return self._tensor[index]
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return torch.from_numpy(self.rows(index))

    def labels(self) -> torch.Tensor:
        """All labels as an int64 tensor."""
        return torch.from_numpy(self.y)

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray, name: str = "arrays") -> SplitData:
        """Wrap in-memory arrays (already stacked, float32 NCHW or NTCHW)."""
        return cls(parts=[np.asarray(x, dtype=np.float32)], y=y, name=name)


def read_meta(task_dir: Path) -> dict[str, Any]:
    """The task's ``meta.json``.

    Raises:
        DataError: missing, unreadable, or without a ``classes`` list.
    """
    path = Path(task_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read preprocess meta ({exc})") from exc
    if not isinstance(meta.get("classes"), list) or not meta["classes"]:
        raise DataError(f"{path}: 'classes' must be a non-empty list")
    return meta


def occlusion_splits(task_dir: Path) -> list[str]:
    """Names of the ``test_occ<pct>`` splits present, by increasing occlusion."""
    found = [p.name for p in Path(task_dir).iterdir() if p.is_dir() and OCC_SPLIT.match(p.name)]
    return sorted(found, key=lambda name: int(OCC_SPLIT.match(name).group(1)))


def occlusion_levels(splits: Iterable[str]) -> list[str]:
    """The ``test_occ<pct>`` splits by level; the pooled ``test_occluder_<kind>`` splits
    (which also start with ``test_occ``) are not levels."""
    return sorted((s for s in splits if OCC_SPLIT.match(s)), key=occlusion_percent)


def occlusion_percent(split: str) -> int:
    """Occlusion level of a split name: 0 for ``test``, pct for ``test_occ<pct>``."""
    match = OCC_SPLIT.match(split)
    return int(match.group(1)) if match else 0


def has_modalities(task_dir: Path, inputs: tuple[str, ...], split: str = "train") -> bool:
    """True when ``split`` holds an array for every modality in ``inputs``."""
    folder = Path(task_dir) / split
    return all((folder / f"{m}.npy").exists() for m in inputs)


def choose_task(data_dir: Path, inputs: tuple[str, ...], forced: str | None = None) -> Path | None:
    """The task folder a model with ``inputs`` trains on, or None when no task fits.

    Clips (``frames``) live in ``video``; stills, RGB-D or 2-D, in ``image`` (the preprocess
    stage's task folders), and a task qualifies only when it holds every modality the model
    reads. ``forced`` picks a folder by name and still checks the modalities.
    """
    unknown = [m for m in inputs if m not in MODALITIES]
    if unknown:
        raise DataError(f"model inputs {unknown} are not preprocess modalities {MODALITIES}")
    if forced:
        candidates = [forced]
    elif "frames" in inputs:
        candidates = ["video"]
    else:
        candidates = ["image"]
    for name in candidates:
        task_dir = Path(data_dir) / name
        if (task_dir / "meta.json").exists() and has_modalities(task_dir, inputs):
            return task_dir
    return None


def no_task_reason(data_dir: Path, inputs: tuple[str, ...]) -> str:
    """Why :func:`choose_task` found nothing: the skip note train and tune stages write."""
    found = sorted(p.name for p in Path(data_dir).glob("*") if (p / "meta.json").exists())
    return f"no task in {data_dir} has modalities {list(inputs)} (tasks found: {found})"


def task_name(task_dir: Path, inputs: tuple[str, ...]) -> str:
    """The task a model serves, as tracking and the registry name it: ``video`` for clips,
    ``rgbd`` for a still model that reads depth, ``image`` for one that reads colour alone.

    The model's inputs decide, not the folder: a colour-only net trained on RGB-D stills takes
    a plain photo, so it belongs with the 2-D models (``ferops-image``), not the depth ones."""
    if Path(task_dir).name == "video" or "frames" in inputs:
        return "video"
    return "rgbd" if "depth" in inputs else "image"


def task_folder(task: str) -> str:
    """The preprocess folder holding a task's arrays (inverse of :func:`task_name`)."""
    return "video" if task == "video" else "image"


def load_split(
    task_dir: Path, split: str, inputs: tuple[str, ...], *, grey: bool = False
) -> SplitData:
    """Memory-map one split's arrays for a model.

    Args:
        task_dir: ``<data>/<task>``.
        split: ``train``, ``val``, ``test`` or ``test_occ<pct>``.
        inputs: modality names, stacked channel-wise in this order.
        grey: convert every 3-channel colour modality to one luma channel.

    Raises:
        DataError: the split folder or one of its arrays is missing or inconsistent.
    """
    folder = Path(task_dir) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder not found (run the preprocess stage)")
    parts = [_open(folder / f"{m}.npy") for m in inputs]
    y = np.asarray(_open(folder / "y.npy"), dtype=np.int64)
    greys = [grey and m in COLOUR_MODALITIES for m in inputs]
    return SplitData(parts=parts, y=y, grey=greys, name=str(folder))


def _open(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"{path}: array not found")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array ({exc})") from exc


def write_split(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write one split folder in the preprocess layout (float16 inputs, int64 y, str ids)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if name in MODALITIES:
            array = np.asarray(array, dtype=np.float16)
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
    return folder
