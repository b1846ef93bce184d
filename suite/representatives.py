"""Intraclass clustering and lowest-entropy representatives, shared by EncodeNet and CAE-Net.

EncodeNet (Sec. 3, 4.1) and CAE-Net: embed every training image, cluster the images of each class
(k-means, k by the elbow method; HDBSCAN and cosine-similarity clustering were the alternatives the
paper tried), score every image by the entropy of the trained baseline's softmax, and make the
lowest-entropy image of each (class, cluster) that cluster's representative: the target the
converting autoencoder learns to turn each of its members into.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from suite.data import DatasetInfo, Split, iterate_batches

FEATURES = ("auto", "vgg16", "baseline", "pixels")
CLUSTERINGS = ("kmeans", "none", "hdbscan", "cosine")


def logits_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits), per row."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


@torch.no_grad()
def over_split(fn, model: nn.Module, split: Split, info: DatasetInfo, device: torch.device | str,
               batch_size: int = 1000) -> torch.Tensor:
    """`fn(model, x)` for every image of the split in order, without augmentation, model in eval mode."""
    model.eval().to(device)
    out = [fn(model, x).float().cpu()
           for x, _ in iterate_batches(split.to(device), info, batch_size, shuffle=False, augment=False)]
    return torch.cat(out)


def softmax_entropy(model: nn.Module, split: Split, info: DatasetInfo, device: torch.device | str = "cpu") -> torch.Tensor:
    """Entropy of the model's softmax for every image of the split."""
    return over_split(lambda m, x: logits_entropy(m(x)), model, split, info, device)


# ----------------------------------------------------------------------------- features
def vgg16_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG16 weights (present only if downloaded before)."""
    from torchvision.models import VGG16_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG16_Weights.IMAGENET1K_V1.url).name


def resolve_features(kind: str) -> str:
    """`auto` is the paper's VGG16 when its weights are cached (no download attempted), else `baseline`."""
    if kind not in FEATURES:
        raise ValueError(f"unknown clustering features {kind!r}; valid: {', '.join(FEATURES)}")
    if kind == "auto":
        return "vgg16" if vgg16_weights_path().exists() else "baseline"
    return kind


@torch.no_grad()
def vgg16_features(split: Split, device: torch.device | str, batch_size: int = 500) -> np.ndarray:
    """ImageNet VGG16 (torchvision) after its 13th convolution, averaged over space: 512-d at 32x32."""
    from torchvision.models import VGG16_Weights, vgg16

    try:
        net = vgg16(weights=VGG16_Weights.IMAGENET1K_V1).features[:30].eval().to(device)  # through conv13 + ReLU
    except Exception as exc:  # no cached weights and no network
        raise ValueError(f"ImageNet VGG16 weights are not available ({type(exc).__name__}); use features=baseline "
                         f"or features=pixels, or put {vgg16_weights_path().name} in {vgg16_weights_path().parent}") from None
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(split), batch_size):
        x = split.images[start:start + batch_size].to(device).float() / 255
        if x.shape[1] == 1:  # grey digits: three equal channels, padded to 32x32
            x = nn.functional.pad(x, [(32 - x.shape[-1]) // 2] * 4).expand(-1, 3, -1, -1)
        out.append(net((x - mean) / std).mean((2, 3)).cpu())
    return torch.cat(out).numpy()


def baseline_features(model: nn.Module, split: Split, info: DatasetInfo, device: torch.device | str = "cpu") -> np.ndarray:
    """The trained baseline's penultimate embedding (`forward_head(pre_logits=True)`)."""
    return over_split(lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True), model, split, info,
                      device).numpy()


def pixel_features(split: Split, components: int = 50, seed: int = 0) -> np.ndarray:
    """Raw pixels reduced by PCA (scikit-learn)."""
    from sklearn.decomposition import PCA

    x = split.images.reshape(len(split), -1).float().numpy() / 255
    return PCA(n_components=min(components, *x.shape), random_state=seed).fit_transform(x)


# ----------------------------------------------------------------------------- clustering
def kmeans_inertias(features: np.ndarray, ks: range, seed: int = 0) -> list[float]:
    from sklearn.cluster import KMeans

    return [float(KMeans(n_clusters=k, n_init=3, random_state=seed).fit(features).inertia_) if k <= len(features)
            else float("nan") for k in ks]


def elbow_k(ks: list[int], inertias: list[float]) -> int:
    """The elbow of a decreasing inertia curve: the k farthest below the chord from its first to its last
    point, both axes scaled to [0, 1] (the "kneedle" rule)."""
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    if len(x) < 3 or not np.isfinite(y).all() or y[0] <= y[-1]:
        return int(x[0])
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y[-1]) / (y[0] - y[-1])
    return int(x[np.argmax((1 - xn) - yn)])


def cluster_class(features: np.ndarray, method: str, k: int, seed: int = 0) -> np.ndarray:
    """Cluster labels 0..m-1 for the images of one class."""
    from sklearn.cluster import HDBSCAN, KMeans

    n = len(features)
    if method == "none" or n <= 1:
        return np.zeros(n, dtype=np.int64)
    if method in ("kmeans", "cosine"):
        if method == "cosine":  # cosine similarity: k-means on unit vectors (spherical k-means)
            features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return KMeans(n_clusters=min(k, n), n_init=3, random_state=seed).fit_predict(features).astype(np.int64)
    if method == "hdbscan":
        labels = HDBSCAN(min_cluster_size=max(5, n // 50), copy=True).fit_predict(features)
        found = sorted(set(labels) - {-1})
        if not found:
            return np.zeros(n, dtype=np.int64)
        centroids = np.stack([features[labels == c].mean(0) for c in found])
        noise = labels == -1  # noise points join their nearest cluster, so every image has a representative
        if noise.any():
            labels[noise] = np.array(found)[np.argmin(((features[noise, None] - centroids[None]) ** 2).sum(-1), 1)]
        return np.searchsorted(found, labels).astype(np.int64)
    raise ValueError(f"unknown clustering {method!r}; valid: {', '.join(CLUSTERINGS)}")


@dataclass
class Targets:
    """Per training image: its cluster and the index of its representative (in the same split)."""

    cluster: torch.Tensor  # int64, N
    representative: torch.Tensor  # int64, N: index into the training split
    entropy: torch.Tensor  # float, N
    clusters_per_class: list[int]
    elbow: dict | None = None  # {"ks": [...], "inertia": [...] summed over classes, "k": chosen}

    def state(self) -> dict:
        return {"cluster": self.cluster, "representative": self.representative, "entropy": self.entropy,
                "clusters_per_class": self.clusters_per_class, "elbow": self.elbow}

    @classmethod
    def from_state(cls, state: dict) -> "Targets":
        return cls(**state)

    def representatives_of(self, labels: torch.Tensor, cls: int) -> list[int]:
        """Indices of class `cls`'s representatives, by cluster."""
        members = labels == cls
        return [int(self.representative[members & (self.cluster == c)][0])
                for c in range(self.clusters_per_class[cls]) if (members & (self.cluster == c)).any()]


def choose_targets(features: np.ndarray, labels: np.ndarray, entropy: np.ndarray, method: str = "kmeans",
                   k: int = 0, max_k: int = 8, seed: int = 0) -> Targets:
    """Cluster each class, then map every image to the lowest-entropy member of its (class, cluster).

    For k-means and cosine clustering with k = 0, one k for the dataset is chosen by the elbow of the
    within-class inertia summed over classes (the paper reports one k: 3 on CIFAR-10)."""
    classes = np.unique(labels)
    elbow = None
    if method in ("kmeans", "cosine") and k <= 0:
        ks = list(range(1, max_k + 1))
        feats = features if method == "kmeans" else \
            features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        curve = np.nansum([kmeans_inertias(feats[labels == c], ks, seed) for c in classes], axis=0)
        k = elbow_k(ks, list(curve))
        elbow = {"ks": ks, "inertia": [float(v) for v in curve], "k": k}
    cluster = np.zeros(len(labels), dtype=np.int64)
    representative = np.zeros(len(labels), dtype=np.int64)
    per_class = [0] * (int(classes.max()) + 1)
    for c in classes:
        idx = np.flatnonzero(labels == c)
        assigned = cluster_class(features[idx], method, k, seed)
        cluster[idx] = assigned
        per_class[int(c)] = int(assigned.max()) + 1
        for j in np.unique(assigned):
            members = idx[assigned == j]
            representative[members] = members[np.argmin(entropy[members])]
    return Targets(torch.from_numpy(cluster), torch.from_numpy(representative), torch.as_tensor(entropy),
                   per_class, elbow)
