"""A real workload run bare and under `memtrail run` by
tests/integration/test_python.c (CPython 3.11 from pyenv, which has sympy and
networkx): stdout and the exit status must be identical, and so must stderr
apart from memtrail's own lines.

Prints the results of a little symbolic algebra (expand, factor, integrate,
series, solve) and of graph algorithms (shortest paths, minimum spanning
tree, max flow, betweenness centrality rounded) on deterministic graphs, and one line to
stderr. Everything printed is independent of hash randomisation.
"""
import sys

import networkx as nx
import sympy


def algebra():
    x, y = sympy.symbols("x y")
    expr = sympy.expand((x + 2 * y - 1) ** 7)
    print("expand terms", len(expr.args))
    print("factor", sympy.factor(x ** 6 - y ** 6))
    print("integrate", sympy.integrate(x ** 3 * sympy.exp(-x) * sympy.sin(x), x))
    print("series", sympy.series(sympy.cos(x) / (1 - x), x, 0, 8))
    print("solve", sorted(sympy.solve(x ** 4 - 10 * x ** 2 + 9, x)))
    print("limit", sympy.limit((1 + 1 / x) ** x, x, sympy.oo))
    m = sympy.Matrix(4, 4, lambda i, j: (i + 1) * (j + 2) % 7 + (i == j))
    print("det", m.det(), "rank", m.rank())


def graphs():
    g = nx.grid_2d_graph(20, 20)
    for k, (u, v) in enumerate(sorted(g.edges())):
        g.edges[u, v]["weight"] = (k * 7919) % 23 + 1
        g.edges[u, v]["capacity"] = (k * 104729) % 17 + 1
    print("dijkstra", nx.dijkstra_path_length(g, (0, 0), (19, 19)))
    mst = nx.minimum_spanning_tree(g)
    print("mst weight", sum(d["weight"] for _, _, d in mst.edges(data=True)))
    print("maxflow", nx.maximum_flow_value(g, (0, 0), (19, 19)))
    bc = nx.betweenness_centrality(nx.grid_2d_graph(9, 9), normalized=True)
    top = sorted(bc.items(), key=lambda kv: (-round(kv[1], 9), kv[0]))[:3]
    print("betweenness", [(n, round(c, 6)) for n, c in top])
    print("components", nx.number_connected_components(g),
          "diameter", nx.diameter(nx.path_graph(30)))


algebra()
graphs()
print("done", file=sys.stderr)
