"""Res-VAE artifacts: a fitted :class:`~engine.drug.resvae.ResVAE` or
:class:`~engine.drug.resvae.ResVAEClassifier` as a flat ``dict[str, torch.Tensor]`` (readable with
``torch.load(weights_only=True)``, the form :func:`engine.platform.registry.save_artifact` stores)
and a JSON-ready metadata dict (config, seed, widths); the ``*_from_state`` functions rebuild a
model that predicts exactly as the saved one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from engine.drug.resvae import Decoder, Encoder, Head, ResVAE, ResVAEClassifier, ResVAEConfig

__all__ = ["classifier_from_state", "classifier_to_state", "vae_from_state", "vae_to_state"]


def _prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}


def _unprefixed(prefix: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def _preprocessing(model: ResVAE | ResVAEClassifier) -> dict[str, torch.Tensor]:
    return {"mean": model.mean_.clone(), "scale": model.scale_.clone(),
            "baseline": model.baseline_.clone()}


def vae_to_state(vae: ResVAE) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A fitted VAE as (flat state_dict of tensors, JSON-ready metadata: config, seed, F)."""
    state = {**_prefixed("encoder", vae.encoder_), **_prefixed("decoder", vae.decoder_),
             **_preprocessing(vae), "binary": vae.binary_.clone()}
    meta = {"kind": "resvae", "config": vae.config.to_dict(), "seed": vae.seed,
            "n_features": vae.n_features_}
    return state, meta


def vae_from_state(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> ResVAE:
    """Inverse of :func:`vae_to_state` (predicts exactly as the saved VAE)."""
    if meta.get("kind") != "resvae":
        raise ValueError(f"metadata kind = {meta.get('kind')!r}; expected 'resvae'")
    config = ResVAEConfig.from_dict(meta["config"])
    vae = ResVAE(config, int(meta["seed"]))
    n_features = int(meta["n_features"])
    vae.encoder_ = Encoder(n_features, config)
    vae.decoder_ = Decoder(n_features, config)
    vae.encoder_.load_state_dict(_unprefixed("encoder", state))
    vae.decoder_.load_state_dict(_unprefixed("decoder", state))
    vae.mean_, vae.scale_ = state["mean"].clone(), state["scale"].clone()
    vae.baseline_, vae.binary_ = state["baseline"].clone(), state["binary"].clone().bool()
    vae.history_ = []
    for m in (vae.encoder_, vae.decoder_):
        m.eval()
        m.requires_grad_(False)
    return vae


def classifier_to_state(clf: ResVAEClassifier) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A fitted classifier as (flat state_dict of tensors, JSON-ready metadata). The encoder is
    stored with the head (frozen or not), so the classifier loads without its VAE."""
    state = {**_prefixed("encoder", clf.encoder_), **_prefixed("head", clf.head_),
             **_preprocessing(clf)}
    meta = {"kind": "resvae_classifier", "config": clf.config.to_dict(), "seed": clf.seed,
            "freeze_encoder": clf.freeze_encoder, "n_features": int(clf.mean_.shape[0]),
            "best_epoch": int(clf.best_epoch_)}
    return state, meta


def classifier_from_state(state: Mapping[str, torch.Tensor],
                          meta: Mapping[str, Any]) -> ResVAEClassifier:
    """Inverse of :func:`classifier_to_state`; the result predicts but has no ``vae`` (None),
    so it cannot be refitted."""
    if meta.get("kind") != "resvae_classifier":
        raise ValueError(f"metadata kind = {meta.get('kind')!r}; expected 'resvae_classifier'")
    config = ResVAEConfig.from_dict(meta["config"])
    clf = ResVAEClassifier(None, bool(meta["freeze_encoder"]), config,  # type: ignore[arg-type]
                           int(meta["seed"]))
    clf.encoder_ = Encoder(int(meta["n_features"]), config)
    clf.head_ = Head(config)
    clf.encoder_.load_state_dict(_unprefixed("encoder", state))
    clf.head_.load_state_dict(_unprefixed("head", state))
    clf.mean_, clf.scale_ = state["mean"].clone(), state["scale"].clone()
    clf.baseline_ = state["baseline"].clone()
    clf.best_epoch_ = int(meta.get("best_epoch", 0))
    for m in (clf.encoder_, clf.head_):
        m.eval()
        m.requires_grad_(False)
    return clf
