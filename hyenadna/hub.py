"""Where weights and datasets come from: a path, the bundled model, ``$HYENADNA_HOME``, or the Hugging Face Hub.

Lookup order for a model (``resolve_weights``):
1. ``model_path``, or a ``model_name`` that is a path: used as it is (a missing path is an error, never a name).
2. No name: the model bundled in the package.
3. ``$HYENADNA_HOME/<name>/`` (default ``~/.cache/hyenadna``), also as ``<name>-hf``: folders placed by hand.
4. The Hugging Face Hub, through ``huggingface_hub`` into its standard cache (``HF_HUB_CACHE`` / ``HF_HOME``), so files
   fetched with ``huggingface-cli download`` are found and the other way round. A published name prefers
   ``LongSafari/<name>-hf`` (safetensors, no pickle) and falls back to the Lightning repository ``LongSafari/<name>``
   when the ``-hf`` one is missing. A repo id (``org/name``) is fetched as it is.

Offline (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``) never opens a socket. With the network down and a cached
copy, the cached copy is used with one warning. The cache is never pruned: a failed request or check deletes nothing
that was there before, and a broken download leaves the cache as it was.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hyenadna.models.checkpoint import SHARD_INDEX, WEIGHT_CANDIDATES, shard_names
from hyenadna.models.config import PUBLISHED_CONFIGS, HyenaConfig

BUNDLED_DIR = Path(__file__).parent / "weights"
# The pretrained model shipped inside the package (``hyenadna/weights/<name>/``), used when no model is named.
BUNDLED_MODEL = "hyenadna-tiny-1k-d256-grch37"
# The shape used for a deliberately random model when no name is given.
DEFAULT_RANDOM_SHAPE = "hyenadna-tiny-1k-seqlen-d256"
# Where the published checkpoints live on the Hub.
HUB_ORG = "LongSafari"
HUB_LAYOUTS = ("auto", "hf", "lightning")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsNotFoundError(FileNotFoundError):
    """The named model's (or dataset's) files are not on this machine and cannot be fetched; the message says what
    to do. ``repo_type``: "model" or "dataset"."""

    def __init__(self, *args, repo_type: str = "model"):
        super().__init__(*args)
        self.repo_type = repo_type


class HubDownloadError(OSError):
    """A download from the Hub failed or was rejected; the cache is left as it was before the attempt."""


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub. ``None`` fields fall back to huggingface_hub's environment variables, read per call."""

    revision: str | None = None  # branch, tag or commit; None is "main"
    local_files_only: bool = False  # never open a socket (also HF_HUB_OFFLINE=1)
    endpoint: str | None = None  # default: HF_ENDPOINT, else https://huggingface.co
    cache_dir: str | Path | None = None  # default: HF_HUB_CACHE, else $HF_HOME/hub
    layout: str = "auto"  # published names: "auto" (-hf first, Lightning if missing), "hf" or "lightning"
    token: str | bool | None = None

    def __post_init__(self) -> None:
        if self.layout not in HUB_LAYOUTS:
            raise ValueError(f"hub layout {self.layout!r}: choose one of {HUB_LAYOUTS}")

    @property
    def offline(self) -> bool:
        return self.local_files_only or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")

    @property
    def resolved_endpoint(self) -> str:
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        if os.environ.get("HF_HUB_CACHE"):
            return Path(os.environ["HF_HUB_CACHE"]).expanduser()
        home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        return Path(home).expanduser() / "hub"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> Path:
    """The folder of hand-placed model folders, ``$HYENADNA_HOME`` (default ``~/.cache/hyenadna``)."""
    return Path(os.environ.get("HYENADNA_HOME") or "~/.cache/hyenadna").expanduser()


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "config.json").is_file())


def known_names() -> list[str]:
    return sorted(set(PUBLISHED_CONFIGS) | set(bundled_models()))


def published_config(name: str) -> HyenaConfig | None:
    name = name.rsplit("/", 1)[-1] if name.startswith(f"{HUB_ORG}/") else name
    return PUBLISHED_CONFIGS.get(name.removesuffix("-hf"))


def is_repo_id(name: str) -> bool:
    """``org/name`` as the Hub spells repositories (and not a path: no leading ``/``, ``.`` or ``~``)."""
    return bool(_REPO_ID.match(name)) and not name.endswith((".ckpt", ".safetensors", ".json"))


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~"))
        or os.sep in name.replace("/", "", 1)
        or name.count("/") > 1
        or name.endswith((".ckpt", ".safetensors", ".json"))
    )


def model_repos(name: str, layout: str = "auto") -> list[str]:
    """The Hub repositories that may hold ``name``, most preferred first."""
    if is_repo_id(name):
        return [name]
    base = name.removesuffix("-hf")
    if name.endswith("-hf") or layout == "hf":
        return [f"{HUB_ORG}/{base}-hf"]
    if layout == "lightning":
        return [f"{HUB_ORG}/{base}"]
    return [f"{HUB_ORG}/{base}-hf", f"{HUB_ORG}/{base}"]


def resolve_weights(
    model_name: str | None, model_path: str | Path | None = None, hub: HubOptions | None = None
) -> Path:
    """The file or directory holding the weights for ``model_name`` (or the bundled default), fetched if need be."""
    hub = hub or HubOptions()
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"model path {str(path)!r}: no such file or folder")
        return path
    if model_name is None:
        if BUNDLED_MODEL not in bundled_models():
            raise WeightsNotFoundError(
                f"no model named, and the bundled model {BUNDLED_MODEL!r} is missing from {BUNDLED_DIR} (a broken "
                "install?): name a published model or a checkpoint folder"
            )
        return BUNDLED_DIR / BUNDLED_MODEL
    on_disk = Path(model_name).expanduser().exists() and ("/" in model_name or os.sep in model_name)
    if on_disk or _looks_like_path(model_name):
        path = Path(model_name).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"model {model_name!r}: no such file or folder")
        return path
    if model_name in bundled_models():
        return BUNDLED_DIR / model_name
    if not is_repo_id(model_name):
        if published_config(model_name) is None:
            close = difflib.get_close_matches(model_name, known_names(), n=2, cutoff=0.75)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise WeightsNotFoundError(
                f"unknown model name {model_name!r}; {hint}known names: {', '.join(known_names())}. A Hub "
                "repository is named as org/name, and a checkpoint as its file or folder path"
            )
        base = model_name.removesuffix("-hf")
        for c in [cache_dir() / model_name] + ([cache_dir() / f"{base}-hf"] if base == model_name else []):
            if c.is_dir() and any((c / f).is_file() for f in WEIGHT_CANDIDATES):
                return c
    return download_model(model_name, hub)


def download_model(name: str, hub: HubOptions | None = None) -> Path:
    """Fetch a model's ``config.json`` and weights from the Hub into its cache; the snapshot folder holding them."""
    hub = hub or HubOptions()
    fetcher = HubFetcher(hub)
    repos = model_repos(name, hub.layout)
    not_cached: list[NotCached] = []
    for repo in repos:
        try:
            folder = _fetch_model_repo(fetcher, repo)
        except NotCached as e:  # the next repository may be in the cache
            not_cached.append(e)
            continue
        if folder is not None:
            return folder
    if not_cached:
        raise not_cached[0]
    raise WeightsNotFoundError(
        f"{name!r}: not found on {hub.resolved_endpoint} (tried {', '.join(repos)}"
        + (f" at revision {hub.revision!r}" if hub.revision else "")
        + "). Check the name, or pass a checkpoint folder"
    )


def _fetch_model_repo(fetcher: HubFetcher, repo: str) -> Path | None:
    """The snapshot folder of ``repo`` with config.json and one weights file, or None when the repo is not there."""
    from huggingface_hub.utils import EntryNotFoundError

    with fetcher.transaction(repo):
        try:
            config = fetcher.fetch(repo, "config.json")
        except HubNotFound:
            return None
        for filename in WEIGHT_CANDIDATES:
            try:
                path = Path(fetcher.fetch(repo, filename))
            except (EntryNotFoundError, HubNotFound, NotCached):
                continue
            if filename == SHARD_INDEX:  # a sharded model: every shard it lists, or none of this repository
                for shard in shard_names(path):
                    try:
                        fetcher.fetch(repo, shard)
                    except HubNotFound as e:
                        missing = f"{repo}: {SHARD_INDEX} lists {shard}, which is not there ({e})"
                        raise WeightsNotFoundError(missing) from None
            return path.parent
    where = (
        f"the local cache {fetcher.hub.resolved_cache_dir}" if fetcher.offline(repo) else fetcher.hub.resolved_endpoint
    )
    raise WeightsNotFoundError(
        f"{repo}: has config.json ({config}) but none of {', '.join(WEIGHT_CANDIDATES)} in {where}"
    )


class HubNotFound(WeightsNotFoundError):
    """The server answered that the repository, revision or file does not exist."""


class NotCached(WeightsNotFoundError):
    """Offline, or the Hub cannot be reached, and the file is not in the local cache."""


class HubFetcher:
    """Fetches files of Hub repositories into the cache for one lookup.

    The first file of each repository is preceded by a metadata request: when the endpoint cannot be reached, that
    repository is served from the cache with one warning, and its other files are not asked for again.
    """

    def __init__(self, hub: HubOptions, download_args: dict[str, str] | None = None):
        self.hub = hub
        # repo -> what `hyenadna download` takes to prefetch it, where that is not the repo id (a suite's name)
        self.download_args = download_args or {}
        self.unreachable: dict[str, str] = {}  # repo -> why the endpoint could not be reached
        self.probed: set[str] = set()
        self.warned = False  # the network-down warning is given once per lookup

    def offline(self, repo: str) -> bool:
        return self.hub.offline or repo in self.unreachable

    def fetch(self, repo: str, filename: str, repo_type: str = "model") -> str:
        """The local path of one file. Raises ``HubNotFound`` (404), ``NotCached`` or ``HubDownloadError``.

        A download that fails, or whose size or sha256 does not match what the server announced, leaves the cache
        as it was: the branch ref is restored and rejected bytes are set aside, never over a good copy.
        """
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub.utils import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        hub = self.hub
        kw = {
            "repo_id": repo,
            "filename": filename,
            "repo_type": repo_type,
            "revision": hub.revision,
            "cache_dir": str(hub.resolved_cache_dir),
        }
        if not hub.offline and repo not in self.probed:
            self.probed.add(repo)
            error = _unreachable(repo, filename, hub, repo_type)
            if error is not None:
                self.unreachable[repo] = error
        if self.offline(repo):
            # a plain cache lookup: hf_hub_download(local_files_only=True) may still open a socket for its headers
            path = try_to_load_from_cache(repo, filename, kw["cache_dir"], hub.revision, repo_type)
            if not isinstance(path, str):
                args = self.download_args.get(repo)
                message = _not_cached_message(repo, hub, self.unreachable.get(repo), repo_type, args)
                raise NotCached(message, repo_type=repo_type)
            if repo in self.unreachable and not self.warned:
                self.warned = True
                warnings.warn(
                    f"could not reach {hub.resolved_endpoint} ({self.unreachable[repo]}); using the cached copy of "
                    f"{repo} in {Path(path).parent}",
                    stacklevel=3,
                )
            return path
        blobs = self.repo_folder(repo, repo_type) / "blobs"
        blobs_before = {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()
        try:
            path = hf_hub_download(**kw, endpoint=hub.resolved_endpoint, token=hub.token)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
            raise HubNotFound(f"{repo}: {_first_line(e)}", repo_type=repo_type) from e
        except _LOCAL_ERRORS as e:
            raise HubDownloadError(_local_folder_message(repo, hub, e)) from None
        except Exception as e:  # the transfer broke: connection lost, short read, size mismatch
            raise HubDownloadError(
                f"{repo}: downloading {filename} from {hub.resolved_endpoint} failed ({_first_line(e)}). The "
                f"cache at {hub.resolved_cache_dir} is as it was; run the same command again to retry"
            ) from None
        _verify_new_blob(Path(path), filename, blobs_before)
        return path

    def repo_folder(self, repo: str, repo_type: str = "model") -> Path:
        from huggingface_hub.file_download import repo_folder_name

        return self.hub.resolved_cache_dir / repo_folder_name(repo_id=repo, repo_type=repo_type)

    @contextmanager
    def transaction(self, repo: str, repo_type: str = "model"):
        """Fetch several files of ``repo`` as one: if any fails, the branch ref goes back to where it was.

        huggingface_hub moves ``refs/<branch>`` to the new commit before the bytes arrive; left there after a broken
        download, it would hide the good copy of the previous commit from offline use.
        """
        ref = self.repo_folder(repo, repo_type) / "refs" / (self.hub.revision or "main")
        before = ref.read_text() if ref.is_file() else None
        try:
            yield
        except BaseException:
            if before is not None and (not ref.is_file() or ref.read_text() != before):
                from hyenadna.utils.io import atomic_write_text

                atomic_write_text(ref, before)
            raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _unreachable(repo: str, filename: str, hub: HubOptions, repo_type: str) -> str | None:
    """None when the endpoint answers for this file (a 404 included); else why it could not be reached."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    url = hf_hub_url(repo, filename, repo_type=repo_type, revision=hub.revision, endpoint=hub.resolved_endpoint)
    try:
        get_hf_file_metadata(url, token=hub.token, endpoint=hub.resolved_endpoint)
    except _LOCAL_ERRORS as e:  # the Hugging Face folders on this machine, not the network
        raise HubDownloadError(_local_folder_message(repo, hub, e)) from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None and status >= 500:
            return f"HTTP {status}"
        return None  # 4xx: the server answered; hf_hub_download raises the precise error
    except Exception as e:  # connection refused, DNS, timeout, proxy
        return _first_line(e)
    return None


# a file-system error of HF_HOME (its token file, its cache): a retry cannot help, another folder can
_LOCAL_ERRORS = (NotADirectoryError, IsADirectoryError, PermissionError)


def _local_folder_message(repo: str, hub: HubOptions, error: OSError) -> str:
    return (
        f"{repo}: the Hugging Face folder on this machine cannot be used ({_first_line(error)}); the cache is "
        f"{hub.resolved_cache_dir}: set HF_HOME (or HF_HUB_CACHE) to a folder this user can write"
    )


def _not_cached_message(
    repo: str, hub: HubOptions, unreachable: str | None, repo_type: str, download_args: str | None = None
) -> str:
    why = "offline mode is on" if hub.offline else f"{hub.resolved_endpoint} cannot be reached ({unreachable})"
    rev = f" --revision {hub.revision}" if hub.revision else ""
    local = "a folder of task folders (--tasks-dir)" if repo_type == "dataset" else "a local folder"
    return (
        f"{repo}: {why}, and it is not in the local cache ({hub.resolved_cache_dir}). On a machine with a network, "
        f"prefetch it with `hyenadna download {download_args or repo}{rev}` into the same cache (set HF_HOME or "
        f"HF_HUB_CACHE to share one), or pass {local}"
    )


def _verify_new_blob(path: Path, filename: str, blobs_before: set[str]) -> None:
    """A freshly downloaded LFS file must hash to the sha256 its blob is named by (the server's ETag)."""
    real = path.resolve()
    if real.name in blobs_before or not _SHA256.match(real.name):
        return
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != real.name:
        rejected = real.with_name(real.name + ".rejected")
        os.replace(real, rejected)  # set aside for inspection; it never was a good copy
        if path.is_symlink():
            path.unlink()
        raise HubDownloadError(
            f"{filename}: the downloaded file's sha256 is {h.hexdigest()}, but the server announced {real.name}. "
            f"It was rejected (kept as {rejected}); the cache is as it was. Run the command again to retry"
        )


def check_matches_published(name: str | None, config: HyenaConfig, source: Path) -> None:
    """Files found under a published name must have that model's shape."""
    expected = published_config(name) if name else None
    if expected is None:
        return
    shape = ("d_model", "n_layer", "d_inner", "l_max")
    diffs = [
        f"{f}={getattr(config, f)} (expected {getattr(expected, f)})"
        for f in shape
        if getattr(config, f) != getattr(expected, f)
    ]
    if diffs:
        raise ValueError(f"{source}: these weights do not have the shape of {name}: {', '.join(diffs)}")


__all__ = [
    "HubDownloadError",
    "HubFetcher",
    "HubNotFound",
    "HubOptions",
    "NotCached",
    "WeightsNotFoundError",
    "cache_dir",
    "check_matches_published",
    "download_model",
    "resolve_weights",
]
