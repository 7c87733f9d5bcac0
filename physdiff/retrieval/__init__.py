"""Retrieval of the physics latent from the visual latent at inference (paper Sec. 3.4)."""

from physdiff.retrieval.index import (
    INDEX_FORMAT,
    RetrievalIndex,
    build_index,
    load_index,
    log_index_to_mlflow,
    manifest_path,
    query,
    retrieve,
)

__all__ = [
    "INDEX_FORMAT",
    "RetrievalIndex",
    "build_index",
    "load_index",
    "log_index_to_mlflow",
    "manifest_path",
    "query",
    "retrieve",
]
