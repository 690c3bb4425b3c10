"""Neighbour sampling for mini-batch GNN training on large graphs.

PyTorch Geometric's own ``NeighborSampler`` needs ``pyg-lib`` or ``torch-sparse``, which
have no wheels for torch 2.13; :class:`UniformNeighbourSampler` implements the same
``BaseSampler`` contract in plain torch, so PyG's ``NodeLoader`` can drive it. Memory then
grows with the batch size and the fan-out, not with the city.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput


class UniformNeighbourSampler(BaseSampler):
    """Uniform k-hop neighbour sampling in plain torch, for PyG's ``NodeLoader``.

    PyG's own ``NeighborSampler`` needs ``pyg-lib`` or ``torch-sparse``, which have no
    wheels for torch 2.13; this sampler implements the same contract: for each hop, up to
    ``num_neighbors[k]`` incoming neighbours of every frontier node, chosen uniformly
    without replacement. Seeds come first in the output node list.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, num_neighbors: list[int],
                 generator: torch.Generator) -> None:
        dst_order = torch.argsort(edge_index[1], stable=True)
        self.src = edge_index[0][dst_order]
        self.edge_ids = dst_order
        counts = torch.bincount(edge_index[1], minlength=num_nodes)
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.rowptr[1:] = torch.cumsum(counts, 0)
        self.num_nodes = num_nodes
        self.num_neighbors = list(num_neighbors)
        self.generator = generator

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: Any) -> SamplerOutput:
        seeds = index.node.to(torch.long)
        local = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local[seeds] = torch.arange(seeds.numel())
        nodes, frontier = [seeds], seeds
        rows, cols, edges = [], [], []
        num_sampled_nodes, num_sampled_edges = [seeds.numel()], []
        total = seeds.numel()
        for fanout in self.num_neighbors:
            start, stop = self.rowptr[frontier], self.rowptr[frontier + 1]
            degree = stop - start
            owner = torch.repeat_interleave(torch.arange(frontier.numel()), degree)
            offset = torch.arange(int(degree.sum())) - torch.repeat_interleave(
                torch.cumsum(degree, 0) - degree, degree)
            position = start[owner] + offset
            if fanout >= 0:
                # Random keys, then keep the first `fanout` per owner: uniform without
                # replacement, fully vectorised.
                keys = torch.rand(position.numel(), generator=self.generator) + owner
                order = torch.argsort(keys)
                owner, position = owner[order], position[order]
                rank = torch.arange(owner.numel()) - torch.repeat_interleave(
                    torch.cumsum(degree, 0) - degree, degree)
                keep = rank < fanout
                owner, position = owner[keep], position[keep]
            src = self.src[position]
            fresh = torch.unique(src[local[src] < 0])
            local[fresh] = torch.arange(total, total + fresh.numel())
            total += fresh.numel()
            nodes.append(fresh)
            rows.append(local[src])
            cols.append(local[frontier[owner]])
            edges.append(self.edge_ids[position])
            num_sampled_nodes.append(fresh.numel())
            num_sampled_edges.append(src.numel())
            frontier = fresh
        return SamplerOutput(node=torch.cat(nodes), row=torch.cat(rows), col=torch.cat(cols),
                             edge=torch.cat(edges), batch=None,
                             num_sampled_nodes=num_sampled_nodes,
                             num_sampled_edges=num_sampled_edges,
                             metadata=(index.input_id, index.time))

    def sample_from_edges(self, index: Any, neg_sampling: Any = None) -> Any:
        raise NotImplementedError("edge-level sampling is not used by crimecast")
