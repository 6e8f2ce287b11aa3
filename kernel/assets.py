"""Named downloadable assets (example media, reference weights) with sha256 pins.

``anytalker fetch NAME`` downloads into the cache (with pooch), verifies sha256 and refuses a
mismatch.
Weights whose publisher gives no checksum (SyncNet, the FID/FVD TorchScript files) carry
``sha256=None`` here: fetching them needs ``--sha256 HEX`` from a source you trust, or
``--pin`` to record the hash of the first download in ``pins.json`` (trust on first use);
every later fetch or ``--from`` copy is checked against that pin.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kernel.data import cache_dir, candidate_roots, examples_dir
from kernel.errors import UserError
from kernel.media import sha256_file


def assets_dir() -> Path:
    # the metrics look here too (metrics.assets.find_asset)
    return Path(os.environ.get("ANYTALKER_ASSETS", cache_dir() / "assets"))


@dataclass
class Asset:
    name: str
    url: str
    sha256: str | None
    size: int | None
    dest: str  # path relative to its folder (assets_dir() or examples_dir())
    kind: str  # "weights" | "media"
    source: str = ""
    notes: str = ""
    alt_urls: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return examples_dir() if self.kind == "media" else assets_dir()

    @property
    def path(self) -> Path:
        return self.folder / self.dest


# The example media set: byte-identical public files, pinned to repository commits
# (the same files ../shared/data holds; see its SOURCES.md). Layout matches ../shared/data,
# except the two interact_11 per-speaker tracks, kept as the original WAVs.
EXAMPLE_MEDIA = [
    ('anytalker_benchmark/interact_11.mp4',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/benchmark/interact_11.mp4',
     '72089b75a338c5c6c330e76fed3320e0c2e9c65d951f79fdf3957c414a3c9642', 1300730, 'HKUST-C4G/AnyTalker'),
    ('anytalker_benchmark/speaker_duration.json',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/benchmark/speaker_duration.json',
     'ff9e16cacc11d5966412b466a68eb64138db2eed9a3d6f1a9e58b25cb1ac2b98', 2805, 'HKUST-C4G/AnyTalker'),
    ('talking/syncnet_example_video.avi',
     'https://raw.githubusercontent.com/nawta/SyncNet_py309_313/37e9c749212485b36c3049bd943bfa818c310840/example/video.avi',
     '272f92c4ab9da22fb4e03ba56aab520369c9a38bce1912843d712a9761a299fd', 3960148, 'nawta/SyncNet_py309_313'),
    ('talking/syncnet_example_speech.wav',
     'https://raw.githubusercontent.com/nawta/SyncNet_py309_313/37e9c749212485b36c3049bd943bfa818c310840/example/speech.wav',
     '9ddfb5563cba43fdb236f3307b1f23b0c6a44ffdbc60e0674b008fbcb9d37c48', 169678, 'nawta/SyncNet_py309_313'),
    ('talking/latentsync_demo1_video.mp4',
     'https://raw.githubusercontent.com/bytedance/LatentSync/a229c3948406bc2cf6eaf4873e662e70c6a04746/assets/demo1_video.mp4',
     'ed2dd1e2001aa605c3f2d77672a8af4ed55e427a85c55d408adfc3d5076bc872', 1240008, 'bytedance/LatentSync'),
    ('talking/latentsync_demo1_audio.wav',
     'https://raw.githubusercontent.com/bytedance/LatentSync/a229c3948406bc2cf6eaf4873e662e70c6a04746/assets/demo1_audio.wav',
     '4f7dd2112dbdc0bece5ee6f26553a4867b65740eb53187ecc8b1a3c1618b2405', 307278, 'bytedance/LatentSync'),
    ('talking/infinitetalk_ref_video.mp4',
     'https://raw.githubusercontent.com/MeiGen-AI/InfiniteTalk/0107cd96421b3b1bef7728bde14447dbff7b2db2/examples/single/ref_video.mp4',
     '3cb07cbfa63576d8b06eb2954cc56d1b089764f0a9428da867348810d6cb9071', 843790, 'MeiGen-AI/InfiniteTalk'),
    ('talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4',
     'https://raw.githubusercontent.com/OpenTalker/SadTalker/cd4c0465ae0b54a6f85af57f5c65fec9fe23e7f8/examples/ref_video/WDA_AlexandriaOcasioCortez_000.mp4',
     'a85242c3fc4d50e2202cea393b9e7ee59019759b68e78e26a254d528c22615a7', 2257667, 'OpenTalker/SadTalker'),
    ('audio/sample.wav',
     'https://raw.githubusercontent.com/pyannote/pyannote-audio/b749285c5cdd4636b2edc7f766f1352c8dde9369/src/pyannote/audio/sample/sample.wav',
     'c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e', 960104, 'pyannote/pyannote-audio'),
    ('audio/sample.rttm',
     'https://raw.githubusercontent.com/pyannote/pyannote-audio/b749285c5cdd4636b2edc7f766f1352c8dde9369/src/pyannote/audio/sample/sample.rttm',
     'd78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87', 596, 'pyannote/pyannote-audio'),
    ('audio/sample.stm',
     'https://raw.githubusercontent.com/pyannote/pyannote-audio/b749285c5cdd4636b2edc7f766f1352c8dde9369/src/pyannote/audio/sample/sample.stm',
     'f861f3004927e1c4429199f9695bfd252def75d7d5e4bdf735d3d85fd4a667f7', 788, 'pyannote/pyannote-audio'),
    ('scenes/clip_01_tears_of_steel.mp4',
     'https://raw.githubusercontent.com/awwkl/ZWM/be5125291de4ecce43d0129d8c1778016628cf82/data/demo_videos/clip_01_tears_of_steel.mp4',
     '255457e25f7001063ae259b973e48c10f5088b131649e9649be43d2b11c09434', 760792, 'awwkl/ZWM'),
    ('images/anytalker/1p-0.png',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/input_example/images/1p-0.png',
     'c1b766f294b8df5a4fe5b8b570679a9fd5ae975b0a01fef1fb450033d8a9eab2', 576207, 'HKUST-C4G/AnyTalker'),
    ('images/anytalker/2p-0.png',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/input_example/images/2p-0.png',
     'fd2a22b62e1947e1dbdcaa01c52427be10718311b7f706b09d2ea0d7e493d6e8', 638906, 'HKUST-C4G/AnyTalker'),
    ('images/anytalker/2p-1.png',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/input_example/images/2p-1.png',
     '76af15a012d1c44f507885ddadc0b76d3e11033b76b04efba10bb84ef7631906', 1994537, 'HKUST-C4G/AnyTalker'),
    ('images/anytalker/2p-2.png',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/input_example/images/2p-2.png',
     '495cfb95289f9eb2cf08bd5147bdbb4ccccdd5a8cd5d3cee044e4da7bc24e822', 2211688, 'HKUST-C4G/AnyTalker'),
    ('images/anytalker/2p-3.png',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/input_example/images/2p-3.png',
     '49ef84b277117943bbc0c7ff39f305afb66d1f318b83acf00757222055bb2e45', 2098511, 'HKUST-C4G/AnyTalker'),
    ('images/face_recognition/obama.jpg',
     'https://raw.githubusercontent.com/ageitgey/face_recognition/2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1/examples/obama.jpg',
     '0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6', 279922, 'ageitgey/face_recognition'),
    ('images/face_recognition/obama2.jpg',
     'https://raw.githubusercontent.com/ageitgey/face_recognition/2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1/examples/obama2.jpg',
     'a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6', 184455, 'ageitgey/face_recognition'),
    ('images/face_recognition/biden.jpg',
     'https://raw.githubusercontent.com/ageitgey/face_recognition/2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1/examples/biden.jpg',
     '3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c', 353723, 'ageitgey/face_recognition'),
    ('images/face_recognition/two_people.jpg',
     'https://raw.githubusercontent.com/ageitgey/face_recognition/2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1/examples/two_people.jpg',
     '536b29cd513fb618e4d5aa79d51a279948daa804ce359463449cce5f9dc68aa7', 487722, 'ageitgey/face_recognition'),
    ('anytalker_benchmark/audio_left/interact_11_left.wav',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/benchmark/audio_left/interact_11_left.wav',
     '37ecea9014a684470c5a6be8d25c861b459f6cfa2cbda0cde1c55093688ae870', 1650732, 'HKUST-C4G/AnyTalker'),
    ('anytalker_benchmark/audio_right/interact_11_right.wav',
     'https://raw.githubusercontent.com/HKUST-C4G/AnyTalker/e5490b60dc6add439ff5ecec5bd7559606a78d53/benchmark/audio_right/interact_11_right.wav',
     '0ef999a59f9042d8d5147f7de8915e4ac304da7e7366d090beceed62bdbf017d', 1650732, 'HKUST-C4G/AnyTalker'),
]


# Reference network files the metrics load (read by metrics.assets and `anytalker fetch`).
# Nothing is downloaded at import time or by the metrics: the user fetches or supplies the file
# (``--weights PATH``). ``sha256`` is None where no trustworthy published hash could be verified
# here (no network): it must be pinned on first fetch (``anytalker fetch NAME --pin``, or compute
# it with ``kernel.media.sha256_file`` and record it in this list).
METRIC_WEIGHTS: list[dict] = [
    {
        "name": "inception-2015-12-05",
        "filename": "inception-2015-12-05.pt",
        # the TorchScript file as clean-fid and StyleGAN2-ADA / StyleGAN3's metrics download it
        "url": "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,  # about 95 MB; record the exact size on first fetch
        "format": "torchscript",
        "used_by": ["fid"],
        "notes": "TF Inception-v3 (2015-12-05) ported to TorchScript; call model(x, return_features=True) -> (N, 2048) pool3 features",
    },
    {
        "name": "i3d_torchscript",
        "filename": "i3d_torchscript.pt",
        "url": "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,  # about 50 MB; record the exact size on first fetch
        "format": "torchscript",
        "used_by": ["fvd"],
        "notes": "Kinetics-400 I3D as used by StyleGAN-V; model(x, rescale=False, resize=False, return_features=True) -> (N, 400) logits; x in [-1, 1], (N, 3, T, 224, 224)",
    },
    {
        "name": "syncnet_v2",
        "filename": "syncnet_v2.model",
        "url": "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,
        "format": "torch state_dict (joonson/syncnet_python)",
        "used_by": ["sync_c", "sync_d", "sync_c_star"],
        "notes": "joonson's SyncNet weights; loaded by curation.sync.get_sync_backend('syncnet', weights=PATH)",
    },
]


def _registry() -> dict[str, Asset]:
    reg: dict[str, Asset] = {}
    for local, url, sha, size, repo in EXAMPLE_MEDIA:
        name = "example:" + local
        reg[name] = Asset(name=name, url=url, sha256=sha, size=size, dest=local, kind="media", source=repo)
    for a in METRIC_WEIGHTS:
        reg[a["name"]] = Asset(name=a["name"], url=a["url"], sha256=a.get("sha256"), size=a.get("size"),
                               dest=a["filename"], kind="weights", notes=a.get("notes", ""),
                               alt_urls=list(a.get("alt_urls") or []))
    extra = [
        Asset("s3fd", "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth", None, None,
              "sfd_face.pth", "weights", "joonson/syncnet_python",
              "S3FD face detector used by syncnet_python's own pipeline (benchmarks/perf/syncnet_parity.py)"),
    ]
    for a in extra:
        reg.setdefault(a.name, a)
    return reg


def registry() -> dict[str, Asset]:
    return _registry()


def _pins_path() -> Path:
    return assets_dir() / "pins.json"


def _pins() -> dict[str, str]:
    p = _pins_path()
    return json.loads(p.read_text()) if p.exists() else {}


def expected_sha256(asset: Asset) -> str | None:
    return asset.sha256 or _pins().get(asset.name)


def _record_pin(asset: Asset, sha: str) -> None:
    pins = _pins()
    pins[asset.name] = sha
    _pins_path().parent.mkdir(parents=True, exist_ok=True)
    _pins_path().write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")


def _download(url: str, dest: Path, sha256: str | None, progress: bool, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` with pooch, which checks ``sha256`` (when given) before the
    file is moved into place, and removes a mismatching download."""
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress, headers={"User-Agent": "anytalker-fetch"},
                                      timeout=timeout)
    pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=dest.name, path=dest.parent,
                   downloader=downloader)


def fetch(name: str, source: str | None = None, sha256: str | None = None, pin: bool = False,
          force: bool = False, progress: bool = False) -> Path:
    """Fetch one asset (from its URL, or copy ``source``: a local file or URL) into the cache."""
    import pooch

    reg = registry()
    if name not in reg:
        raise UserError(f"unknown asset {name!r}; list them with `anytalker fetch --list`")
    asset = reg[name]
    want = sha256 or expected_sha256(asset)
    if want is None and not pin:
        raise UserError(
            f"{asset.name}: its publisher gives no checksum, so there is nothing to verify the download against; "
            f"pass --sha256 HEX from a source you trust, or --pin to record the hash of this first download"
        )
    dest = asset.path
    if dest.exists() and not force and want and sha256_file(dest) == want:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # a temporary name in the same folder: the asset appears only once verified (os.replace)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        src = source or asset.url
        if os.path.exists(src):
            shutil.copyfile(src, tmp)
        else:
            errors = []
            for url in [src, *([] if source else asset.alt_urls)]:
                try:
                    _download(url, tmp, want, progress)
                    break
                except ValueError as e:  # pooch: hash mismatch (the download is already removed)
                    raise UserError(f"{asset.name}: sha256 mismatch for {url} ({e}); the file was NOT installed. "
                                    f"Check the source, or the pin in {_pins_path()}") from None
                except Exception as e:  # noqa: BLE001 - requests / OS errors: try the next URL
                    errors.append(f"{url}: {type(e).__name__}: {e}")
            else:
                raise UserError(
                    f"{asset.name}: download failed ({'; '.join(errors)}). Offline? Download {asset.url} "
                    f"elsewhere and run `anytalker fetch {asset.name} --from PATH`"
                )
        got = pooch.file_hash(str(tmp), alg="sha256")
        if want and got != want:
            raise UserError(f"{asset.name}: sha256 mismatch (expected {want}, got {got}); the file was NOT "
                            f"installed. Check the source, or the pin in {_pins_path()}")
        os.replace(tmp, dest)
        if want is None and pin:
            _record_pin(asset, got)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def locate(asset: Asset, data: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Where an asset is present: for example media the data roots the toolkit reads
    (``--data``, ``$ANYTALKER_DATA``, ``../shared/data``, then the fetched set), for weights the
    asset folder. Returns (path or None, label of the place)."""
    if asset.kind != "media":
        return (asset.path, "cache") if asset.path.exists() else (None, "")
    roots = ([("--data", Path(data))] if data else []) + candidate_roots()
    for label, root in roots:
        if (root / asset.dest).exists():
            return root / asset.dest, label
    # the shared data set keeps the per-speaker benchmark tracks transcoded to FLAC (same audio)
    dest = Path(asset.dest)
    if dest.suffix == ".wav":
        for label, root in roots:
            alt = root / dest.with_suffix(".flac")
            if alt.exists():
                return alt, f"{label}, as .flac"
    return None, ""


def fetch_examples(source_dir: str | None = None, progress: bool = False) -> Path:
    """All example media; ``source_dir`` copies from a local folder with the same layout."""
    for name, asset in registry().items():
        if asset.kind != "media":
            continue
        src = None
        if source_dir:
            cand = Path(source_dir) / asset.dest
            if cand.exists():
                src = str(cand)
        fetch(name, source=src, progress=progress)
    return examples_dir()


def examples_complete() -> bool:
    return all(a.path.exists() for a in registry().values() if a.kind == "media")
