"""The Key Management Plane: QKD network topologies, node-disjoint path planning and the (k, n) policy.

Needs networkx (``pip install 'mpss-fast[sim]'``); ``import mpss_fast`` alone does not
import it. See docs/kmp.md.
"""

from ..exceptions import PathError, PolicyError, TopologyError
from ._nx import nx as _nx  # first: a clear ImportError when networkx is missing
from .builtin import METRO_ENDPOINTS, backbone, builtin, fibre_link, metro, random_mesh
from .cost import key_aware_cost, link_cost
from .files import from_dict, from_json, load, read_graphml, save, to_dict, to_json, write_graphml
from .paths import Path, disjoint_paths, max_disjoint_paths, min_vertex_cut
from .policy import Plan, choose_k_n, plan
from .sid import SID_PREFIX, auto_sid
from .topology import DEFAULT_COST, Link, Topology

del _nx

__all__ = [
    "DEFAULT_COST",
    "METRO_ENDPOINTS",
    "SID_PREFIX",
    "Link",
    "Path",
    "PathError",
    "Plan",
    "PolicyError",
    "Topology",
    "TopologyError",
    "auto_sid",
    "backbone",
    "builtin",
    "choose_k_n",
    "disjoint_paths",
    "fibre_link",
    "from_dict",
    "from_json",
    "key_aware_cost",
    "link_cost",
    "load",
    "max_disjoint_paths",
    "metro",
    "min_vertex_cut",
    "plan",
    "random_mesh",
    "read_graphml",
    "save",
    "to_dict",
    "to_json",
    "write_graphml",
]
